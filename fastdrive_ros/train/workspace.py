"""Where training keeps what it can reuse: keyframe records and token caches in a work folder.

Records are keyed by the dataset arguments, token caches by the encoder's weight hash and the
records, so `train-planner`, `train-pruner` and `build-default` pointed at the same work folder
share them (a cache is built once per encoder and dataset, never silently reused for another).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.records import KeyframeRecord, records_for
from fastdrive_ros.train.token_cache import TokenCache, build_token_cache, module_hash


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DataSpec:
    """One split of one dataset (nuScenes or synthetic)."""

    dataroot: Path
    version: str
    split: str = "all"
    mask_root: Path | None = None
    max_samples: int | None = None

    def key(self, cameras: Sequence[str], *, limited: bool = True) -> str:
        """Names the records file (limited=False: all of the split) or a subset's cache."""
        return _key(
            Path(self.dataroot).resolve(),
            self.version,
            self.split,
            self.mask_root and Path(self.mask_root).resolve(),
            ",".join(cameras),
            self.max_samples if limited else None,
        )


class Workspace:
    """records/<key>.json and cache/<encoder hash>/<key>/ under one work folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def records(
        self,
        data: DataSpec,
        *,
        cameras: Sequence[str] = CAMERA_NAMES,
        require_masks: bool = False,
        progress: bool = True,
    ) -> list[KeyframeRecord]:
        """The split's records (read once, then from records/<key>.json), spread-subsampled."""
        records = records_for(
            dataroot=data.dataroot,
            version=data.version,
            split=data.split,
            cache=self.folder / "records" / f"{data.key(cameras, limited=False)}.json",
            cameras=cameras,
            mask_root=data.mask_root,
            require_masks=require_masks,
            progress=progress,
        )
        return subsample(records, data.max_samples)

    def token_cache(
        self,
        *,
        encoder: nn.Module,
        data: DataSpec,
        records: Sequence[KeyframeRecord],
        image_size: tuple[int, int],
        dist: DistContext | None = None,
        workers: int = 1,
        threads: int = 1,
        progress: bool = True,
        resize: str = "bilinear",
    ) -> TokenCache:
        """Build (or reuse) the frozen encoder's tokens of `records` (`resize`: resampling)."""
        cameras = records[0].cameras if records else CAMERA_NAMES
        suffix = "" if resize == "bilinear" else f"_{resize}"  # bilinear caches keep their names
        folder = (
            self.folder
            / "cache"
            / module_hash(encoder)
            / f"{data.key(cameras)}_{image_size[0]}x{image_size[1]}{suffix}"
        )
        return build_token_cache(
            encoder=encoder,
            records=records,
            image_size=image_size,
            folder=folder,
            dist=dist,
            workers=workers,
            threads=threads,
            progress=progress,
            resize=resize,
        )


def subsample(records: Sequence[KeyframeRecord], limit: int | None) -> list[KeyframeRecord]:
    """At most `limit` records spread evenly over the list (every scene, not the first few)."""
    records = list(records)
    if limit is None or limit >= len(records):
        return records
    if limit < 1:
        raise ValueError(f"max samples must be >= 1, got {limit}")
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)]
