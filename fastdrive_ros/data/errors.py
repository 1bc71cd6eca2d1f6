"""The one error type of the data room: a dataset on disk that cannot be read as asked."""

from __future__ import annotations


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
