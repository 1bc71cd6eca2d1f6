"""Coordinate frames in one place: nuScenes global (x east, y north, z up) <-> ego (x fwd, y left).

nuScenes stores poses as translation (3,) and rotation quaternion (4,) in w, x, y, z order; ROS
messages want x, y, z, w. The ego frame is nuScenes' ego_pose frame (rear axle, on the ground).
Poses are interpolated at exact times (translation linear, rotation slerp), because nuScenes ego
poses exist only at sensor times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.data.cameras import quaternion_to_matrix


def quaternion_yaw(q_wxyz: np.ndarray) -> float:
    """Heading (rad, CCW from +x) of the rotated x axis projected on the ground plane."""
    forward = quaternion_to_matrix(q_wxyz)[:, 0]
    return float(np.arctan2(forward[1], forward[0]))


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def ros_quaternion(q_wxyz: np.ndarray) -> tuple[float, float, float, float]:
    """Convert nuScenes w, x, y, z to ROS x, y, z, w."""
    w, x, y, z = (float(v) for v in q_wxyz)
    return x, y, z, w


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation of two (4,) unit quaternions (same order), shortest arc."""
    a = np.asarray(q0, dtype=np.float64) / np.linalg.norm(q0)
    b = np.asarray(q1, dtype=np.float64) / np.linalg.norm(q1)
    dot = float(np.dot(a, b))
    if dot < 0.0:
        b, dot = -b, -dot
    if dot > 0.9995:  # nearly parallel: normalised lerp is exact enough and stable
        out = a + fraction * (b - a)
        return out / np.linalg.norm(out)
    theta = np.arccos(dot)
    return (np.sin((1.0 - fraction) * theta) * a + np.sin(fraction * theta) * b) / np.sin(theta)


@dataclass(frozen=True)
class Pose:
    """A rigid pose: `translation` (3,) and `rotation` (4,) w, x, y, z, mapping local -> parent."""

    translation: np.ndarray
    rotation: np.ndarray

    @property
    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) local -> parent rotation."""
        return quaternion_to_matrix(self.rotation)

    @property
    def yaw(self) -> float:
        """Heading of the local x axis in the parent frame, rad."""
        return quaternion_yaw(self.rotation)

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) parent-frame points -> (N, 3) points in this pose's frame."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return (pts - self.translation) @ self.rotation_matrix

    def to_parent(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) points in this pose's frame -> (N, 3) parent-frame points."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return pts @ self.rotation_matrix.T + self.translation

    def xy_to_local(self, points_xy: np.ndarray) -> np.ndarray:
        """(N, 2) global ground points (z = pose height) -> (N, 2) in the ego frame."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        full = np.column_stack([pts, np.full(len(pts), self.translation[2])])
        return self.to_local(full)[:, :2]

    def yaw_to_local(self, yaw_global: np.ndarray | float) -> np.ndarray | float:
        """Global headings (rad) -> headings in this pose's frame (rad)."""
        return wrap_angle(np.asarray(yaw_global) - self.yaw)

    def planar_affine(self) -> list[float]:
        """Shapely `affine_transform` coefficients [a, b, d, e, xoff, yoff] for global -> ego 2D.

        Uses the heading only (maps are 2D); matches `xy_to_local` up to the pose's roll/pitch.
        """
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        tx, ty = float(self.translation[0]), float(self.translation[1])
        return [c, s, -s, c, -(c * tx + s * ty), s * tx - c * ty]


class PoseTrack:
    """Poses of one body over time, interpolated at exact times.

    Args:
        timestamps_us: (N,) strictly increasing microseconds.
        translations: (N, 3) metres.
        rotations: (N, 4) w, x, y, z quaternions.
    """

    def __init__(
        self, *, timestamps_us: np.ndarray, translations: np.ndarray, rotations: np.ndarray
    ) -> None:
        times = np.asarray(timestamps_us, dtype=np.int64)
        trans = np.asarray(translations, dtype=np.float64)
        rots = np.asarray(rotations, dtype=np.float64)
        if times.ndim != 1 or len(times) == 0:
            raise ValueError("a pose track needs at least one timestamp")
        if trans.shape != (len(times), 3) or rots.shape != (len(times), 4):
            raise ValueError(
                f"translations must be ({len(times)}, 3) and rotations ({len(times)}, 4), "
                f"got {trans.shape} and {rots.shape}"
            )
        if np.any(np.diff(times) <= 0):
            raise ValueError("pose timestamps must be strictly increasing")
        self._times = times
        self._trans = trans
        self._rots = rots

    @property
    def start_us(self) -> int:
        """First timestamp."""
        return int(self._times[0])

    @property
    def end_us(self) -> int:
        """Last timestamp."""
        return int(self._times[-1])

    @property
    def timestamps_us(self) -> np.ndarray:
        """(N,) timestamps, a read-only view."""
        view = self._times.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return len(self._times)

    def covers(self, t_us: float, tolerance_us: float = 0.0) -> bool:
        """True when t lies within the track (plus a tolerance at both ends)."""
        return self.start_us - tolerance_us <= t_us <= self.end_us + tolerance_us

    def at(self, t_us: float) -> Pose:
        """Pose at time t: interpolated inside the track, held at the nearest end outside it."""
        times = self._times
        if len(times) == 1 or t_us <= times[0]:
            return Pose(self._trans[0].copy(), self._rots[0].copy())
        if t_us >= times[-1]:
            return Pose(self._trans[-1].copy(), self._rots[-1].copy())
        hi = int(np.searchsorted(times, t_us, side="right"))
        lo = hi - 1
        frac = float((t_us - times[lo]) / (times[hi] - times[lo]))
        trans = self._trans[lo] + frac * (self._trans[hi] - self._trans[lo])
        return Pose(trans, slerp(self._rots[lo], self._rots[hi], frac))

    def position(self, t_us: float, window_s: float = 0.5) -> np.ndarray:
        """(3,) position at t; beyond the ends, extrapolated at the velocity over `window_s`."""
        if self.covers(t_us) or len(self._times) == 1:
            return self.at(t_us).translation
        if t_us < self.start_us:
            anchor, other = self.start_us, min(self.end_us, self.start_us + window_s * 1e6)
        else:
            anchor, other = self.end_us, max(self.start_us, self.end_us - window_s * 1e6)
        p_anchor, p_other = self.at(anchor).translation, self.at(other).translation
        velocity = (p_anchor - p_other) / ((anchor - other) * 1e-6)
        return p_anchor + velocity * ((t_us - anchor) * 1e-6)

    def _difference_window(self, t_us: float, half_window_s: float) -> tuple[float, float] | None:
        """(t0, t1) = t -+ half window clipped to the track; None when it is empty."""
        half = half_window_s * 1e6
        t0 = max(float(self._times[0]), t_us - half)
        t1 = min(float(self._times[-1]), t_us + half)
        return None if len(self._times) == 1 or t1 <= t0 else (t0, t1)

    def velocity(self, t_us: float, half_window_s: float = 0.1) -> np.ndarray:
        """(3,) global velocity m/s at t by a central difference, one-sided at the track ends."""
        window = self._difference_window(t_us, half_window_s)
        if window is None:
            return np.zeros(3)
        t0, t1 = window
        return (self.at(t1).translation - self.at(t0).translation) / ((t1 - t0) * 1e-6)

    def yaw_rate(self, t_us: float, half_window_s: float = 0.1) -> float:
        """Yaw rate rad/s at t by a central difference of headings, one-sided at the ends."""
        window = self._difference_window(t_us, half_window_s)
        if window is None:
            return 0.0
        t0, t1 = window
        return float(wrap_angle(self.at(t1).yaw - self.at(t0).yaw)) / ((t1 - t0) * 1e-6)
