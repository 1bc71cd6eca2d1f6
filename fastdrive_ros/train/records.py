"""Keyframe records: what training needs from a dataset, read once and kept as plain JSON.

Opening nuScenes (or the synthetic world) with the devkit and deriving ego history, status and
futures takes seconds to minutes; every training stage needs the same few fields per keyframe, so
they are read once with `NuScenesReader` and written to a JSON file in the work folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES, HISTORY_STEPS, PLAN_STEPS, EgoState

RECORDS_FORMAT = "fastdrive_ros.train.records"
RECORDS_VERSION = 2  # 2: depth_maps


@dataclass(frozen=True)
class KeyframeRecord:
    """One keyframe for training.

    Attributes:
        images: absolute JPEG paths, one per camera (in the order the records were read with).
        fg_masks: nuScenes-FG mask PNG per camera (255 = foreground), None where there is none.
        class_maps: per-pixel SEMANTIC_CLASSES PNG per camera, None where there is none.
        depth_maps: inverse-depth PNG per camera (data/layout.encode_inverse_depth), None where
            there is none (only the synthetic world has them).
        ego: ego history and status at the keyframe (the planner's prompt).
        future_xy: (6, 2) ground-truth waypoints, ego frame; NaN where not valid.
        future_valid: (6,) bool.
    """

    token: str
    scene: str
    cameras: tuple[str, ...]
    images: tuple[str, ...]
    fg_masks: tuple[str | None, ...]
    class_maps: tuple[str | None, ...]
    ego: EgoState
    future_xy: np.ndarray
    future_valid: np.ndarray
    depth_maps: tuple[str | None, ...] = ()

    def to_dict(self) -> dict:
        ego = self.ego
        return {
            "token": self.token,
            "scene": self.scene,
            "cameras": list(self.cameras),
            "images": list(self.images),
            "fg_masks": list(self.fg_masks),
            "class_maps": list(self.class_maps),
            "depth_maps": list(self.depth_maps),
            "ego": {
                "history_xy": np.asarray(ego.history_xy).round(4).tolist(),
                "speed": float(ego.speed),
                "acceleration": float(ego.acceleration),
                "yaw_rate": float(ego.yaw_rate),
                "steering": float(ego.steering),
                "command": ego.command,
            },
            "future_xy": [
                [None if not np.isfinite(v) else round(float(v), 4) for v in row]
                for row in np.asarray(self.future_xy)
            ],
            "future_valid": [bool(v) for v in self.future_valid],
        }

    @classmethod
    def from_dict(cls, data: dict) -> KeyframeRecord:
        ego = data["ego"]
        future = np.array(
            [[np.nan if v is None else v for v in row] for row in data["future_xy"]],
            dtype=np.float64,
        )
        valid = np.array(data["future_valid"], dtype=bool)
        if future.shape != (PLAN_STEPS, 2) or valid.shape != (PLAN_STEPS,):
            raise ValueError(f"record {data.get('token')}: future must be ({PLAN_STEPS}, 2)")
        history = np.array(ego["history_xy"], dtype=np.float64)
        if history.shape != (HISTORY_STEPS, 2):
            raise ValueError(f"record {data.get('token')}: ego history must be (7, 2)")
        return cls(
            token=data["token"],
            scene=data["scene"],
            cameras=tuple(data["cameras"]),
            images=tuple(data["images"]),
            fg_masks=tuple(data["fg_masks"]),
            class_maps=tuple(data["class_maps"]),
            depth_maps=tuple(data.get("depth_maps", ())),
            ego=EgoState(
                history_xy=history,
                speed=ego["speed"],
                acceleration=ego["acceleration"],
                yaw_rate=ego["yaw_rate"],
                steering=ego["steering"],
                command=ego["command"],
            ),
            future_xy=future,
            future_valid=valid,
        )


def read_records(
    *,
    dataroot: str | Path,
    version: str,
    split: str = "all",
    cameras: Sequence[str] = CAMERA_NAMES,
    mask_root: str | Path | None = None,
    require_masks: bool = False,
    progress: bool = True,
) -> list[KeyframeRecord]:
    """Every keyframe with a full 3 s future of one split, with the paths of its masks.

    `mask_root` is where `fastdrive masks` wrote fg_masks/ (and class_maps/); default: the
    dataroot (the synthetic world writes both there).
    """
    from tqdm.auto import tqdm

    from fastdrive_ros.data.layout import class_map_path, depth_map_path
    from fastdrive_ros.data.reader import NuScenesReader

    unknown = [c for c in cameras if c not in CAMERA_NAMES]
    if not cameras or unknown:
        raise ValueError(f"cameras must be names from {CAMERA_NAMES}, got {list(cameras)}")
    reader = NuScenesReader(
        dataroot=dataroot,
        version=version,
        split=split,  # type: ignore[arg-type]
        with_map=False,
        mask_root=mask_root,
        require_masks=require_masks,
    )
    if len(reader) == 0:
        raise ValueError(
            f"split {split!r} of {dataroot} ({version}) has no keyframe with a full 3 s future: "
            "generate longer or more scenes, or use --split all"
        )
    class_root = Path(mask_root) if mask_root is not None else Path(dataroot)
    records = []
    for sample in tqdm(reader, desc=f"read {split} keyframes", disable=not progress):
        by_name = {c.channel: c for c in sample.cameras}
        chosen = [by_name[name] for name in cameras]
        maps = [class_map_path(class_root, c.relpath) for c in chosen]
        depths = [depth_map_path(class_root, c.relpath) for c in chosen]
        records.append(
            KeyframeRecord(
                token=sample.token,
                scene=sample.scene_name,
                cameras=tuple(cameras),
                images=tuple(str(c.path) for c in chosen),
                fg_masks=tuple(None if c.fg_mask is None else str(c.fg_mask) for c in chosen),
                class_maps=tuple(str(p) if p.is_file() else None for p in maps),
                ego=sample.ego,
                future_xy=sample.future_xy,
                future_valid=sample.future_valid,
                depth_maps=tuple(str(p) if p.is_file() else None for p in depths),
            )
        )
    return records


def save_records(records: Sequence[KeyframeRecord], path: str | Path, **meta: object) -> Path:
    """Write records (and the caller's metadata, e.g. dataroot and split) as one JSON file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": RECORDS_FORMAT,
        "version": RECORDS_VERSION,
        "meta": meta,
        "records": [r.to_dict() for r in records],
    }
    # a temp name of its own: every torchrun rank may write the same records file at once
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(payload))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_records(path: str | Path) -> tuple[list[KeyframeRecord], dict]:
    """(records, metadata) from `save_records`' file; a wrong file raises ValueError."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read training records {path}: {exc}") from exc
    if payload.get("format") != RECORDS_FORMAT or payload.get("version") != RECORDS_VERSION:
        raise ValueError(f"{path} is not a fastdrive_ros training-records file (v1)")
    return [KeyframeRecord.from_dict(r) for r in payload["records"]], payload.get("meta", {})


def tables_fingerprint(dataroot: str | Path, version: str) -> str:
    """A digest of the version's scene and sample tables: which keyframes the dataset holds."""
    digest = hashlib.sha256()
    for name in ("scene.json", "sample.json"):
        path = Path(dataroot) / version / name
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:16]


def records_for(
    *,
    dataroot: str | Path,
    version: str,
    split: str,
    cache: str | Path | None,
    cameras: Sequence[str] = CAMERA_NAMES,
    mask_root: str | Path | None = None,
    require_masks: bool = False,
    progress: bool = True,
) -> list[KeyframeRecord]:
    """read_records, reusing `cache` (a JSON file) made from the same arguments and tables.

    The tables' digest makes a world regenerated in place (more scenes) be read again.
    """
    meta = {
        "dataroot": str(Path(dataroot).resolve()),
        "version": version,
        "split": split,
        "cameras": list(cameras),
        "mask_root": None if mask_root is None else str(Path(mask_root).resolve()),
        "tables": tables_fingerprint(dataroot, version),
    }
    if cache is not None and Path(cache).is_file():
        records, saved = load_records(cache)
        if all(saved.get(k) == v for k, v in meta.items()):
            return records
    records = read_records(
        dataroot=dataroot,
        version=version,
        split=split,
        cameras=cameras,
        mask_root=mask_root,
        require_masks=require_masks,
        progress=progress,
    )
    if cache is not None:
        save_records(records, cache, **meta)
    return records


def labelled_images(
    records: Sequence[KeyframeRecord], label: str, limit: int | None = None
) -> list[tuple[int, int]]:
    """(record, camera) pairs whose `label` ("fg_masks" or "class_maps") exists.

    With `limit`, an evenly spread subset, so a short run still sees every scene.
    """
    items = [
        (i, c)
        for i, record in enumerate(records)
        for c, path in enumerate(getattr(record, label))
        if path is not None
    ]
    if limit is not None and limit < len(items):
        picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
        items = [items[i] for i in sorted(set(picks.tolist()))]
    return items


def sample_chain(dataroot: str | Path, version: str) -> dict[str, str]:
    """{sample token: the previous keyframe's token} from the dataset's sample table."""
    path = Path(dataroot) / version / "sample.json"
    try:
        samples = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the sample table {path}: {exc}") from exc
    return {s["token"]: s["prev"] for s in samples if s.get("prev")}


def previous_rows(records: Sequence[KeyframeRecord], chain: Mapping[str, str]) -> np.ndarray:
    """Row of each keyframe's predecessor among `records`; its own where it has none."""
    row = {r.token: i for i, r in enumerate(records)}
    return np.array([row.get(chain.get(r.token, ""), i) for i, r in enumerate(records)])
