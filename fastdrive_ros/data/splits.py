"""Deterministic train/val scene splits.

v1.0-mini and v1.0-trainval use the devkit's official `create_splits_scenes()` (mini_train /
mini_val, train / val). Every other version (v1.0-synth, custom data) is split by a stable hash of
the scene name: a scene is in val when sha256(name) mapped to [0, 1) is below VAL_FRACTION
(about 80/20), so a scene keeps its split when other scenes are added. With two or more scenes
neither side may be empty: if one is, the scene with the lowest (for val) or highest (for train)
hash moves over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from fastdrive_ros.data.errors import DatasetError, require_nuscenes

Split = Literal["train", "val", "all"]
SPLITS: tuple[str, ...] = ("train", "val", "all")
VAL_FRACTION = 0.2
# version -> (train split name, val split name) in nuscenes.utils.splits.create_splits_scenes()
OFFICIAL_SPLITS: dict[str, tuple[str, str]] = {
    "v1.0-mini": ("mini_train", "mini_val"),
    "v1.0-trainval": ("train", "val"),
}


def scene_hash(name: str) -> float:
    """Stable hash of a scene name in [0, 1) (sha256, independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(scene_names: Sequence[str]) -> dict[str, list[str]]:
    """{'train': [...], 'val': [...]} by scene-name hash, input order kept inside each side."""
    names = list(dict.fromkeys(scene_names))
    hashes = {name: scene_hash(name) for name in names}
    val = {name for name in names if hashes[name] < VAL_FRACTION}
    if len(names) >= 2 and not val:
        val = {min(names, key=hashes.__getitem__)}
    if len(names) >= 2 and len(val) == len(names):
        val.discard(max(names, key=hashes.__getitem__))
    return {
        "train": [n for n in names if n not in val],
        "val": [n for n in names if n in val],
    }


def official_split(version: str, scene_names: Sequence[str]) -> dict[str, list[str]]:
    """{'train', 'val'} from the devkit's official lists, restricted to the scenes present.

    Raises DatasetError when a scene is in neither list (the tables do not belong to `version`).
    """
    require_nuscenes()
    from nuscenes.utils.splits import create_splits_scenes

    train_name, val_name = OFFICIAL_SPLITS[version]
    official = create_splits_scenes()
    train, val = set(official[train_name]), set(official[val_name])
    stray = [n for n in scene_names if n not in train and n not in val]
    if stray:
        raise DatasetError(
            f"version mismatch: scene(s) {stray[:5]} are not in the official {version} "
            f"split ({train_name}/{val_name}); is this dataroot really {version}? "
            "Pass the version whose folder holds these tables (e.g. v1.0-synth)."
        )
    return {
        "train": [n for n in scene_names if n in train],
        "val": [n for n in scene_names if n in val],
    }


def split_scenes(version: str, scene_names: Sequence[str], split: str) -> list[str]:
    """The scenes of `split` ('train', 'val' or 'all') in their input order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return list(scene_names)
    if version in OFFICIAL_SPLITS:
        return official_split(version, scene_names)[split]
    return hash_split(scene_names)[split]
