"""Open a nuScenes dataroot with the devkit, turning its asserts and KeyErrors into DatasetErrors.

The normal path costs only `stat` calls before the devkit parses the tables; the full schema check
(`diagnose_tables`) runs only when the devkit fails, to name the table and record at fault.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastdrive_ros.data.errors import DatasetError, require_nuscenes

# table -> fields the devkit's reverse index or this package reads
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "category": ("token", "name"),
    "attribute": ("token", "name"),
    "visibility": ("token", "level"),
    "instance": ("token", "category_token"),
    "sensor": ("token", "channel", "modality"),
    "calibrated_sensor": ("token", "sensor_token", "translation", "rotation", "camera_intrinsic"),
    "ego_pose": ("token", "timestamp", "translation", "rotation"),
    "log": ("token", "location"),
    "scene": ("token", "name", "first_sample_token", "last_sample_token", "log_token"),
    "sample": ("token", "timestamp", "scene_token", "prev", "next"),
    "sample_data": (
        "token",
        "sample_token",
        "ego_pose_token",
        "calibrated_sensor_token",
        "timestamp",
        "filename",
        "is_key_frame",
        "prev",
        "next",
    ),
    "sample_annotation": (
        "token",
        "sample_token",
        "instance_token",
        "translation",
        "size",
        "rotation",
    ),
    "map": ("token", "log_tokens", "filename"),
}
TABLES: tuple[str, ...] = tuple(REQUIRED_FIELDS)
NON_EMPTY = frozenset(
    {"sensor", "calibrated_sensor", "ego_pose", "log", "scene", "sample", "sample_data", "map"}
)


def table_root(dataroot: str | Path, version: str) -> Path:
    """DIR/<version> after checking that the dataroot, the version folder and every table exist."""
    root = Path(dataroot)
    if not root.is_dir():
        raise DatasetError(
            f"nuScenes dataroot {root} does not exist or is not a folder; pass the folder that "
            "holds samples/, sweeps/, maps/ and the version folder (e.g. v1.0-mini)"
        )
    tables = root / version
    if not tables.is_dir():
        found = sorted(p.name for p in root.iterdir() if (p / "scene.json").is_file())
        hint = f"version folders found there: {found}" if found else "no version folder found"
        raise DatasetError(
            f"version folder {tables} not found ({hint}); pass --version matching the folder "
            "that holds the table JSON files"
        )
    for name in TABLES:
        path = tables / f"{name}.json"
        if not path.is_file():
            raise DatasetError(
                f"table file {path} is missing; a nuScenes version folder needs all of "
                f"{', '.join(TABLES)} (re-extract the dataset or regenerate it)"
            )
    return tables


def _check_records(path: Path, name: str, records: Any) -> str | None:
    if not isinstance(records, list):
        return f"table file {path} must hold a JSON list of records, got {type(records).__name__}"
    if not records and name in NON_EMPTY:
        return f"table file {path} is empty; the dataset has no {name} records"
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            return f"table file {path}: record {index} is not a JSON object"
        missing = [f for f in REQUIRED_FIELDS[name] if f not in record]
        if missing:
            return f"table file {path}: record {index} lacks field(s) {missing}"
    return None


def diagnose_tables(tables: Path) -> str | None:
    """The first problem found in the table files (unparseable JSON, wrong shape), else None."""
    for name in TABLES:
        path = tables / f"{name}.json"
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            return f"table file {path} cannot be read: {exc}"
        except json.JSONDecodeError as exc:
            return f"table file {path} is not valid JSON ({exc})"
        problem = _check_records(path, name, records)
        if problem:
            return problem
    return None


def open_nuscenes(dataroot: str | Path, version: str, *, verbose: bool = False) -> Any:
    """`nuscenes.nuscenes.NuScenes(version, dataroot)` with clear errors for broken input."""
    tables = table_root(dataroot, version)
    require_nuscenes()
    from nuscenes.nuscenes import NuScenes

    try:
        return NuScenes(version=version, dataroot=str(dataroot), verbose=verbose)
    except Exception as exc:  # the devkit raises bare Exception/assert on bad tables
        problem = diagnose_tables(tables)
        if problem is None:
            problem = f"the devkit could not index the tables of {tables}: {exc!r}"
        raise DatasetError(
            f"{problem}; fix or regenerate the file (the devkit reads it as nuScenes v1.0)"
        ) from exc
