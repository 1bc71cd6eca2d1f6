"""The one error type of the data room: a dataset on disk that cannot be read as asked."""

from __future__ import annotations

import numpy as np


class DatasetError(ValueError):
    """A missing, malformed or mismatched dataset file; the message names the file and the fix."""


def require_nuscenes() -> None:
    """Fail with a clear message when nuscenes-devkit (the `nuscenes` extra) is not installed."""
    try:
        import nuscenes  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the dev venv always has it
        raise ImportError(
            "reading nuScenes needs nuscenes-devkit: pip install 'fastdrive_ros[nuscenes]'"
        ) from exc


def record_numbers(record: dict, field: str, length: int, table: str) -> np.ndarray:
    """record[field] as `length` finite float64 numbers, or a DatasetError naming the table.

    The devkit loads any JSON value; without this, `"translation": "oops"` surfaced as numpy's
    "could not convert string to float" with no file or record named.
    """
    value = record.get(field)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (length,) or not np.all(np.isfinite(array)):
        raise DatasetError(
            f"table {table}.json: record {record.get('token', '?')} has {field} = "
            f"{str(value)[:60]!r}, expected {length} finite numbers; fix or regenerate the table"
        )
    return array
