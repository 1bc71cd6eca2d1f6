"""Map layers near the ego car from the nuScenes map expansion (`maps/expansion/<location>.json`).

Each location's drivable area is merged once (shapely union of every drivable_area polygon) and its
boundary lines taken from that union, so a query is one intersection with a disc around the
ego car, then a planar transform into the ego frame. Crossings and lanes (for masks) are merged
the same way, lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastdrive_ros.data.errors import DatasetError, require_nuscenes
from fastdrive_ros.data.frames import Pose
from fastdrive_ros.data.types import MapGeometry

MAP_RADIUS_M = 60.0
# polygon layers this module can merge: layer -> how its records name their polygons
_POLYGON_LAYERS = {
    "drivable_area": "polygon_tokens",
    "ped_crossing": "polygon_token",
    "lane": "polygon_token",
    "lane_connector": "polygon_token",
    "walkway": "polygon_token",
}


def map_json_path(dataroot: str | Path, location: str) -> Path:
    """Where the map expansion of `location` lives."""
    return Path(dataroot) / "maps" / "expansion" / f"{location}.json"


def require_map_file(dataroot: str | Path, location: str) -> Path:
    """The map expansion file of `location`, or a DatasetError saying how to get or skip it."""
    path = map_json_path(dataroot, location)
    if not path.is_file():
        raise DatasetError(
            f"map expansion file {path} is missing; install the nuScenes map expansion (v1.3) "
            "into DIR/maps/expansion, or read without maps (with_map=False, `--no-map`)"
        )
    return path


class LocationMap:
    """Merged map layers of one location (global frame, metres)."""

    def __init__(self, *, dataroot: str | Path, location: str) -> None:
        path = require_map_file(dataroot, location)
        require_nuscenes()
        from nuscenes.map_expansion.map_api import NuScenesMap

        try:
            self._api = NuScenesMap(dataroot=str(dataroot), map_name=location)
        except Exception as exc:  # the devkit asserts / raises bare Exception on bad files
            raise DatasetError(f"map expansion file {path} cannot be read: {exc!r}") from exc
        self.location = location
        self._merged: dict[str, Any] = {}
        self._boundary: Any = None

    @property
    def api(self) -> Any:
        """The devkit's NuScenesMap of this location."""
        return self._api

    def layer(self, name: str) -> Any:
        """Union of every polygon of layer `name` (a shapely (Multi)Polygon, maybe empty)."""
        if name not in _POLYGON_LAYERS:
            raise ValueError(f"layer must be one of {sorted(_POLYGON_LAYERS)}, got {name!r}")
        if name not in self._merged:
            from shapely import make_valid
            from shapely.ops import unary_union

            field = _POLYGON_LAYERS[name]
            polygons = []
            for record in getattr(self._api, name):
                tokens = record[field] if isinstance(record[field], list) else [record[field]]
                polygons.extend(self._api.extract_polygon(token) for token in tokens)
            valid = [make_valid(p) for p in polygons if not p.is_empty]
            self._merged[name] = unary_union(valid)
        return self._merged[name]

    @property
    def road_boundary(self) -> Any:
        """Boundary lines of the merged drivable area (global frame)."""
        if self._boundary is None:
            self._boundary = self.layer("drivable_area").boundary
        return self._boundary

    def near(self, pose: Pose, radius_m: float = MAP_RADIUS_M) -> MapGeometry:
        """Drivable area and road boundary within `radius_m` of the pose, in its ego frame."""
        from shapely import affinity
        from shapely.geometry import Point

        disc = Point(float(pose.translation[0]), float(pose.translation[1])).buffer(radius_m)
        affine = pose.planar_affine()
        drivable = affinity.affine_transform(
            self.layer("drivable_area").intersection(disc), affine
        )
        boundary = affinity.affine_transform(self.road_boundary.intersection(disc), affine)
        return MapGeometry(drivable_area=drivable, road_boundary=boundary)


class MapCache:
    """One LocationMap per location, loaded on first use."""

    def __init__(self, *, dataroot: str | Path) -> None:
        self._dataroot = Path(dataroot)
        self._maps: dict[str, LocationMap] = {}

    def __getitem__(self, location: str) -> LocationMap:
        if location not in self._maps:
            self._maps[location] = LocationMap(dataroot=self._dataroot, location=location)
        return self._maps[location]
