"""Lazy imports of this room's optional heavy dependencies, with errors saying what to install."""

from __future__ import annotations

from types import ModuleType

from fastdrive_ros.runtime.errors import MissingDependency, missing_extra


def import_onnx() -> ModuleType:
    """The `onnx` package (extra `export`)."""
    try:
        import onnx
    except ImportError as exc:
        raise missing_extra("onnx", "export") from exc
    return onnx


def import_onnxruntime() -> ModuleType:
    """The `onnxruntime` package (extra `ort`, or `ort-gpu` for CUDA/TensorRT providers)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependency(
            "onnxruntime",
            "pip install 'fastdrive_ros[ort]' (CPU) or 'fastdrive_ros[ort-gpu]' (CUDA), not both",
        ) from exc
    return onnxruntime


def import_tensorrt() -> ModuleType:
    """The `tensorrt` package; it comes with JetPack or NVIDIA's wheels, never from our extras."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependency(
            "tensorrt",
            "on Jetson install JetPack 6 (python3-libnvinfer); on a desktop GPU install NVIDIA's "
            "`tensorrt` wheel matching your CUDA (pip install tensorrt-cu12)",
        ) from exc
    return tensorrt


def tensorrt_major(trt: ModuleType) -> int:
    """Major version of an imported tensorrt module (10 on JetPack 6, 11 on current desktops)."""
    version = str(getattr(trt, "__version__", ""))
    try:
        return int(version.split(".")[0])
    except ValueError as exc:
        raise MissingDependency(
            "tensorrt", f"the installed tensorrt reports an unreadable version {version!r}"
        ) from exc
