"""runtime room (see DESIGN.md section 3): ONNX export, engine cache, encoder+pruner backends.

Public entry points, imported lazily so `fastdrive --help` does not load torch:
    select_backend / choose_backend   backend_select.py
    export_encoder_pruner             onnx_export.py
    ModelFileError, BackendUnavailable, MissingDependency   errors.py
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "select_backend": "fastdrive_ros.runtime.backend_select",
    "choose_backend": "fastdrive_ros.runtime.backend_select",
    "BackendChoice": "fastdrive_ros.runtime.backend_select",
    "export_encoder_pruner": "fastdrive_ros.runtime.onnx_export",
    "ModelFileError": "fastdrive_ros.runtime.errors",
    "BackendUnavailable": "fastdrive_ros.runtime.errors",
    "MissingDependency": "fastdrive_ros.runtime.errors",
    "RuntimeSetupError": "fastdrive_ros.runtime.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fastdrive_ros.runtime' has no attribute {name!r}")
