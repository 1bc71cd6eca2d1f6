"""nuScenes-FG masks from annotations and the map, for data without exact masks (real nuScenes).

Per camera image, a class map is painted back to front: the ground projection of the map's
drivable area and lanes (class road) and pedestrian crossings (crossing), sampled at pixel
centres (raster.py) and kept only below the horizon; then the projected 3D boxes of foreground
categories (FG_CATEGORY_CLASS), farthest first, so nearer boxes cover farther ones; boxes are
filled like OpenCV fills (pixels their outline touches count, so objects a pixel wide stay).
The FG mask is every pixel of a foreground class, OR-ed with an optional learned `Segmenter`
(probability >= a threshold): the union keeps annotation recall and adds what annotations cannot
know (traffic signs and lights, lane paint off the map).

Output layout is fastdrive_ros/data/layout.py's, under the output root: fg_masks/<image>.png (0 /
255) and, with `class_maps=True`, class_maps/<image>.png holding SEMANTIC_CLASSES ids where a class
could be assigned and UNASSIGNED (255) elsewhere (background or unknown: annotations cannot tell).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from fastdrive_ros.data.agents import GlobalBox
from fastdrive_ros.data.errors import DatasetError
from fastdrive_ros.data.layout import CLASS_ID, FOREGROUND_IDS, class_map_path, fg_mask_path
from fastdrive_ros.data.projection import CameraProjector
from fastdrive_ros.data.raster import rasterize
from fastdrive_ros.data.scene_index import CameraFrame

UNASSIGNED = 255
_SHIFT = 4  # sub-pixel bits for cv2 polygon filling
# nuScenes category prefix -> semantic class; first match wins, anything else is not foreground
FG_CATEGORY_CLASS: tuple[tuple[str, str], ...] = (
    ("human.", "human"),
    ("vehicle.bicycle", "cyclist"),
    ("vehicle.motorcycle", "cyclist"),
    ("vehicle.", "vehicle"),
    ("movable_object.trafficcone", "traffic_cone"),
    ("movable_object.", "barrier"),  # barriers, debris, pushable/pullable: obstacles
)
ROAD_LAYERS = ("drivable_area", "lane", "lane_connector")
CROSSING_LAYERS = ("ped_crossing",)


def category_class(category: str) -> str | None:
    """Semantic class of a nuScenes category name, None when it is not foreground."""
    for prefix, name in FG_CATEGORY_CLASS:
        if category.startswith(prefix):
            return name
    return None


@runtime_checkable
class Segmenter(Protocol):
    """A learned foreground segmenter (e.g. Grounded-SAM), combined with the annotations by OR.

    Call: (H, W, 3) uint8 RGB image -> (H, W) float foreground probability in [0, 1].
    """

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class MaskConfig:
    """Knobs of mask painting.

    Attributes:
        near_m: near plane for clipping boxes and ground, metres.
        ground_range_m: map ground drawn within this distance of the camera; farther road is
            mostly hidden behind buildings, which annotations cannot know (a prior).
        box_range_m: boxes drawn within this distance of the camera.
        box_tolerance_s: boxes held this long past an instance's first/last annotation.
        min_visibility: skip boxes annotated less visible than this nuScenes level (1 = keep
            all; 2 drops objects 0-40 % visible over all cameras, often hidden by buildings).
    """

    near_m: float = 0.1
    ground_range_m: float = 100.0
    box_range_m: float = 250.0
    box_tolerance_s: float = 0.3
    min_visibility: int = 1

    def __post_init__(self) -> None:
        if (
            self.near_m <= 0
            or min(self.ground_range_m, self.box_range_m) <= self.near_m
            or self.box_tolerance_s < 0
            or self.min_visibility not in (1, 2, 3, 4)
        ):
            raise ValueError(f"invalid mask config {self}")


def _polygon_rings(geometry: Any) -> list[np.ndarray]:
    """Exterior and interior rings (N, 2) of every polygon in a shapely geometry."""
    if geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [np.asarray(geometry.exterior.coords)[:-1]] + [
            np.asarray(r.coords)[:-1] for r in geometry.interiors
        ]
    if hasattr(geometry, "geoms"):
        return [ring for g in geometry.geoms for ring in _polygon_rings(g)]
    return []


class ClassPainter:
    """Paints the class map of one image from boxes and ground layers."""

    def __init__(self, *, config: MaskConfig) -> None:
        self.config = config
        self._horizon: dict[tuple, np.ndarray] = {}

    def _below_horizon(self, projector: CameraProjector) -> np.ndarray:
        cal = projector.calibration
        key = (cal.channel, cal.width, cal.height, cal.intrinsic.tobytes(), cal.rotation.tobytes())
        if key not in self._horizon:
            self._horizon[key] = projector.below_horizon()
        return self._horizon[key]

    def _ground(self, projector: CameraProjector, layers: Any, names: Sequence[str]) -> np.ndarray:
        """(H, W) bool ground projection of the named map layers."""
        from shapely.geometry import Polygon
        from shapely.ops import unary_union

        width, height = projector.size
        visible = projector.visible_ground(self.config.ground_range_m)
        if visible is None:
            return np.zeros((height, width), bool)
        pose = projector.ego_pose
        visible_global = pose.to_parent(np.column_stack([visible, np.zeros(len(visible))]))
        region = Polygon(visible_global[:, :2])
        geometry = unary_union([layers.layer(n).intersection(region) for n in names])
        rings = [
            projector.ground_to_pixels(pose.xy_to_local(ring)) for ring in _polygon_rings(geometry)
        ]
        return rasterize(rings, height, width) & self._below_horizon(projector)

    def paint(
        self, projector: CameraProjector, boxes: Sequence[GlobalBox], layers: Any | None
    ) -> np.ndarray:
        """(H, W) uint8 class ids (UNASSIGNED where nothing is known)."""
        width, height = projector.size
        classes = np.full((height, width), UNASSIGNED, np.uint8)
        if layers is not None:
            classes[self._ground(projector, layers, ROAD_LAYERS)] = CLASS_ID["road"]
            classes[self._ground(projector, layers, CROSSING_LAYERS)] = CLASS_ID["crossing"]
        cam_origin = projector.ego_pose.to_parent(projector.calibration.translation[None])[0]
        ranked = []
        for box in boxes:
            name = category_class(box.category)
            distance = float(np.linalg.norm(box.center - cam_origin))
            visible = box.visibility >= self.config.min_visibility
            if name is not None and visible and distance <= self.config.box_range_m:
                ranked.append((distance, CLASS_ID[name], box))
        for _, class_id, box in sorted(ranked, key=lambda r: -r[0]):
            pixels = projector.box_polygon(box.corners())
            if pixels is None:
                continue
            hull = cv2.convexHull(np.round(pixels * (1 << _SHIFT)).astype(np.int32))
            cv2.fillConvexPoly(classes, hull, class_id, lineType=cv2.LINE_8, shift=_SHIFT)
        return classes


def foreground(classes: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of a foreground SEMANTIC_CLASSES id."""
    return np.isin(classes, sorted(FOREGROUND_IDS))


def combine(
    annotation_fg: np.ndarray, probability: np.ndarray | None, threshold: float
) -> np.ndarray:
    """The documented rule: annotation mask OR (segmenter probability >= threshold)."""
    if probability is None:
        return annotation_fg
    prob = np.asarray(probability)
    if prob.shape != annotation_fg.shape:
        raise ValueError(
            f"segmenter returned shape {prob.shape}, the image is {annotation_fg.shape}"
        )
    return annotation_fg | (prob >= threshold)


@dataclass(frozen=True)
class MaskSummary:
    """What `build_masks` wrote."""

    out: Path
    images: int
    scenes: int
    seconds: float
    class_maps: bool


def build_masks(
    *,
    dataroot: str | Path,
    version: str,
    out: str | Path,
    scenes: Sequence[str] | None = None,
    sweeps: bool = False,
    class_maps: bool = False,
    segmenter: Segmenter | None = None,
    segmenter_threshold: float = 0.5,
    config: MaskConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
    reader: Any = None,
) -> MaskSummary:
    """Write FG masks (and optionally class maps) for every camera image of the dataset.

    Keyframe images only unless `sweeps`; `scenes` restricts to named scenes. A segmenter's
    probability counts as foreground at >= `segmenter_threshold`. Existing mask files (e.g. the
    exact synthetic masks when `out` is the dataroot) are an error unless `overwrite`. `reader`
    may pass an open NuScenesReader (with_map=True) to skip re-loading the tables.
    """
    from tqdm import tqdm

    from fastdrive_ros.data.reader import NuScenesReader

    config = config or MaskConfig()
    out = Path(out)
    if reader is None:
        reader = NuScenesReader(
            dataroot=dataroot, version=version, with_map=True, full_future_only=False
        )
    names = list(scenes) if scenes else reader.all_scenes()
    for name in names:
        reader.scene_index(name)  # DatasetError listing valid names for a typo
    jobs: list[tuple[str, CameraFrame]] = [
        (name, frame)
        for name in names
        for frame in reader.camera_frames(name, keyframes_only=not sweeps)
    ]
    if not overwrite:
        for _, frame in jobs:
            targets = [fg_mask_path(out, frame.relpath)]
            targets += [class_map_path(out, frame.relpath)] if class_maps else []
            existing = next((t for t in targets if t.exists()), None)
            if existing is not None:
                raise FileExistsError(
                    f"{existing} exists already; choose another --out or pass --overwrite"
                )
    painter = ClassPainter(config=config)
    start = time.perf_counter()
    for name, frame in tqdm(jobs, desc="masks", unit="img", disable=not progress):
        index = reader.scene_index(name)
        projector = CameraProjector(
            calibration=frame.calibration, ego_pose=frame.ego_pose, near_m=config.near_m
        )
        boxes = reader.agents(name).boxes_at(
            frame.timestamp_us, tolerance_s=config.box_tolerance_s
        )
        classes = painter.paint(projector, boxes, reader.location_map(index.location))
        probability = None
        if segmenter is not None:
            probability = segmenter(_read_rgb(Path(reader.dataroot) / frame.relpath))
        mask = combine(foreground(classes), probability, segmenter_threshold)
        _write_png(fg_mask_path(out, frame.relpath), mask.astype(np.uint8) * 255)
        if class_maps:
            _write_png(class_map_path(out, frame.relpath), classes)
    return MaskSummary(out, len(jobs), len(names), time.perf_counter() - start, class_maps)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"image file {path} is missing or not a readable JPEG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def load_segmenter(spec: str) -> Segmenter:
    """Import 'package.module:factory' and call the factory (no arguments) for a Segmenter."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"segmenter must be 'package.module:factory', got {spec!r}")
    try:
        factory: Callable[[], Any] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"segmenter {spec!r} cannot be loaded ({type(exc).__name__}: {exc}); give "
            "'package.module:factory' of an importable module (on PYTHONPATH) and a factory in it"
        ) from exc
    if not callable(factory):
        raise ValueError(
            f"segmenter {spec!r}: {attr} is a {type(factory).__name__}, not a factory"
        )
    segmenter = factory()
    if not callable(segmenter):
        raise TypeError(f"{spec} returned {type(segmenter).__name__}, which is not callable")
    return segmenter
