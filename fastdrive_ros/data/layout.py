"""Where foreground masks and class maps live beside a nuScenes dataroot, and what they hold.

For an image `DIR/samples/CAM_FRONT/<stem>.jpg` (or `sweeps/...`):
  - `DIR/fg_masks/samples/CAM_FRONT/<stem>.png`  uint8 PNG, 255 = nuScenes-FG foreground, 0 = not.
  - `DIR/class_maps/samples/CAM_FRONT/<stem>.png` uint8 PNG, one SEMANTIC_CLASSES id per pixel.
  - `DIR/depth_maps/samples/CAM_FRONT/<stem>.png` uint8 PNG, inverse depth
    (`encode_inverse_depth`): the synthetic world's z-buffer, a training target of the tower.
The synthetic world writes all three exactly; `fastdrive masks` writes the first two for real
nuScenes (into a separate output folder if the dataroot is read-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FG_MASK_DIR = "fg_masks"
CLASS_MAP_DIR = "class_maps"
DEPTH_MAP_DIR = "depth_maps"
# Inverse depth saturates at this optical depth: 255 = 2 m or nearer, 51 = 10 m, 10 = 50 m,
# 0 = sky.
# Fine where braking decisions are made (a 30-m lead reads 17, a 27-m one 19) in 8 bits.
DEPTH_NEAR_M = 2.0


@dataclass(frozen=True)
class SemanticClass:
    id: int
    name: str
    foreground: bool  # nuScenes-FG (FastDriveVLA): humans, roads, vehicles, signs/lights, barriers


# The paper's nuScenes-FG definition: foreground = humans, roads (incl. markings and crossings),
# vehicles, traffic signs and lights, traffic barriers/obstacles; background = sky, buildings,
# vegetation and everything else that is not needed to drive.
SEMANTIC_CLASSES: tuple[SemanticClass, ...] = (
    SemanticClass(0, "sky", False),
    SemanticClass(1, "building", False),
    SemanticClass(2, "vegetation", False),
    SemanticClass(3, "pole", False),
    SemanticClass(4, "sidewalk", False),
    SemanticClass(5, "terrain", False),
    SemanticClass(6, "road", True),
    SemanticClass(7, "lane_marking", True),
    SemanticClass(8, "crossing", True),
    SemanticClass(9, "vehicle", True),
    SemanticClass(10, "human", True),
    SemanticClass(11, "cyclist", True),
    SemanticClass(12, "barrier", True),
    SemanticClass(13, "traffic_cone", True),
    SemanticClass(14, "traffic_sign", True),
    SemanticClass(15, "traffic_light", True),
)
CLASS_ID: dict[str, int] = {c.name: c.id for c in SEMANTIC_CLASSES}
FOREGROUND_IDS: frozenset[int] = frozenset(c.id for c in SEMANTIC_CLASSES if c.foreground)


def _derived(root: Path, kind: str, image_relpath: str) -> Path:
    rel = Path(image_relpath)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"image path must be relative to the dataroot, got {image_relpath!r}")
    return root / kind / rel.with_suffix(".png")


def fg_mask_path(root: str | Path, image_relpath: str) -> Path:
    """Foreground mask of the image at `image_relpath` (relative to the dataroot), under `root`."""
    return _derived(Path(root), FG_MASK_DIR, image_relpath)


def class_map_path(root: str | Path, image_relpath: str) -> Path:
    """Per-pixel class map of the image at `image_relpath`, under `root`."""
    return _derived(Path(root), CLASS_MAP_DIR, image_relpath)


def depth_map_path(root: str | Path, image_relpath: str) -> Path:
    """Inverse-depth map of the image at `image_relpath` (synthetic world only), under `root`."""
    return _derived(Path(root), DEPTH_MAP_DIR, image_relpath)


def encode_inverse_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) optical depth in metres (inf = sky) -> uint8 255 x min(1, DEPTH_NEAR_M / depth)."""
    with np.errstate(divide="ignore"):
        inverse = np.where(np.isfinite(depth_m) & (depth_m > 0), DEPTH_NEAR_M / depth_m, 0.0)
    return np.round(255.0 * np.clip(inverse, 0.0, 1.0)).astype(np.uint8)
