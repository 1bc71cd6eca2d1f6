"""Annotated agents of one scene as per-instance tracks, interpolated at exact times.

nuScenes annotates boxes at 2 Hz keyframes only; future boxes (collision metric) and masks of 12 Hz
images need them at other times. Between two annotations of an instance the box is interpolated
(centre linear, rotation slerp), also across keyframes where it was not annotated (hidden);
within `tolerance_s` past either end it is held; beyond, the instance is absent at that time (it
left the scene or is not annotated yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.frames import Pose, quaternion_yaw, slerp
from fastdrive_ros.data.types import AgentBox


@dataclass(frozen=True)
class GlobalBox:
    """A 3D box in the nuScenes global frame.

    Attributes:
        center: (3,) metres (box centre, half height above its bottom).
        size_wlh: (3,) width, length, height, metres.
        rotation: (4,) w, x, y, z quaternion, box frame (x along length) -> global.
        visibility: nuScenes visibility level 1 (0-40 % visible in all cameras) .. 4 (80-100 %).
    """

    instance_token: str
    category: str
    center: np.ndarray
    size_wlh: np.ndarray
    rotation: np.ndarray
    visibility: int = 4

    def corners(self) -> np.ndarray:
        """(8, 3) global corners in the devkit's Box.corners() order."""
        w, length, h = self.size_wlh
        x = length / 2.0 * np.array([1, 1, 1, 1, -1, -1, -1, -1])
        y = w / 2.0 * np.array([1, -1, -1, 1, 1, -1, -1, 1])
        z = h / 2.0 * np.array([1, 1, -1, -1, 1, 1, -1, -1])
        return Pose(self.center, self.rotation).to_parent(np.stack([x, y, z], axis=1))

    def in_ego(self, pose: Pose) -> AgentBox:
        """The box seen from the ego pose `pose` (x forward, y left)."""
        center = pose.to_local(self.center[None])[0]
        yaw = float(pose.yaw_to_local(quaternion_yaw(self.rotation)))
        return AgentBox(
            center_xy=center[:2].copy(),
            size_wlh=np.asarray(self.size_wlh, dtype=np.float64).copy(),
            yaw=yaw,
            category=self.category,
            instance_token=self.instance_token,
        )


class InstanceTrack:
    """All annotations of one instance in a scene, ordered by time.

    Args:
        times_us: (N,) annotation times (their samples' timestamps), any order.
        centers: (N, 3); sizes_wlh: (N, 3); rotations: (N, 4) w, x, y, z.
        visibility: (N,) levels 1..4 (default: all 4); between two annotations the higher one.
    """

    def __init__(
        self,
        *,
        instance_token: str,
        category: str,
        times_us: Sequence[int],
        centers: np.ndarray,
        sizes_wlh: np.ndarray,
        rotations: np.ndarray,
        visibility: Sequence[int] | None = None,
    ) -> None:
        times = np.asarray(times_us, dtype=np.int64)
        order = np.argsort(times, kind="stable")
        self.instance_token = instance_token
        self.category = category
        self._t = times[order]
        self._c = np.asarray(centers, dtype=np.float64).reshape(-1, 3)[order]
        self._s = np.asarray(sizes_wlh, dtype=np.float64).reshape(-1, 3)[order]
        self._r = np.asarray(rotations, dtype=np.float64).reshape(-1, 4)[order]
        levels = np.full(len(times), 4) if visibility is None else np.asarray(visibility, int)
        self._v = levels.reshape(-1)[order]
        if len(self._t) == 0 or not (
            len(self._t) == len(self._c) == len(self._s) == len(self._r) == len(self._v)
        ):
            raise ValueError(f"instance {instance_token}: annotation arrays differ in length")

    @property
    def start_us(self) -> int:
        """Time of the first annotation."""
        return int(self._t[0])

    @property
    def end_us(self) -> int:
        """Time of the last annotation."""
        return int(self._t[-1])

    def at(self, t_us: float, tolerance_s: float) -> GlobalBox | None:
        """The box at t, or None when t lies outside the track by more than `tolerance_s`."""
        tol = tolerance_s * 1e6
        if t_us < self._t[0] - tol or t_us > self._t[-1] + tol:
            return None
        if t_us <= self._t[0]:
            return self._box(self._c[0], self._s[0], self._r[0], self._v[0])
        if t_us >= self._t[-1]:
            return self._box(self._c[-1], self._s[-1], self._r[-1], self._v[-1])
        hi = int(np.searchsorted(self._t, t_us, side="right"))
        lo = hi - 1
        f = float((t_us - self._t[lo]) / (self._t[hi] - self._t[lo]))
        return self._box(
            self._c[lo] + f * (self._c[hi] - self._c[lo]),
            self._s[lo] + f * (self._s[hi] - self._s[lo]),
            slerp(self._r[lo], self._r[hi], f),
            max(self._v[lo], self._v[hi]),
        )

    def _box(
        self, center: np.ndarray, size: np.ndarray, rotation: np.ndarray, visibility: int
    ) -> GlobalBox:
        return GlobalBox(
            self.instance_token, self.category, center.copy(), size.copy(), rotation,
            int(visibility),
        )  # fmt: skip


def _visibility_level(ann: dict) -> int:
    """Visibility level from nuScenes tokens '1'..'4'; anything else counts as fully visible."""
    token = str(ann.get("visibility_token", ""))
    return int(token) if token in ("1", "2", "3", "4") else 4


class SceneAgents:
    """The instance tracks of one scene."""

    def __init__(self, *, tracks: Iterable[InstanceTrack]) -> None:
        self._tracks = tuple(tracks)

    def __len__(self) -> int:
        return len(self._tracks)

    @classmethod
    def from_devkit(cls, nusc: object, sample_tokens: Sequence[str]) -> SceneAgents:
        """Collect the sample_annotation records of the scene's samples into tracks."""
        rows: dict[str, list[tuple[int, dict]]] = {}
        for token in sample_tokens:
            sample = nusc.get("sample", token)  # type: ignore[attr-defined]
            for ann_token in sample["anns"]:
                ann = nusc.get("sample_annotation", ann_token)  # type: ignore[attr-defined]
                rows.setdefault(ann["instance_token"], []).append((sample["timestamp"], ann))
        tracks = []
        for instance, anns in rows.items():
            tracks.append(
                InstanceTrack(
                    instance_token=instance,
                    category=anns[0][1]["category_name"],
                    times_us=[t for t, _ in anns],
                    centers=np.array([_numbers(a, "translation", 3) for _, a in anns]),
                    sizes_wlh=np.array([_numbers(a, "size", 3) for _, a in anns]),
                    rotations=np.array([_numbers(a, "rotation", 4) for _, a in anns]),
                    visibility=[_visibility_level(a) for _, a in anns],
                )
            )
        return cls(tracks=tracks)

    def boxes_at(self, t_us: float, *, tolerance_s: float) -> list[GlobalBox]:
        """Every instance present at t (see InstanceTrack.at)."""
        boxes = (track.at(t_us, tolerance_s) for track in self._tracks)
        return [box for box in boxes if box is not None]


def _numbers(record: dict, field: str, length: int) -> np.ndarray:
    from fastdrive_ros.data.errors import record_numbers

    return record_numbers(record, field, length, "sample_annotation")
