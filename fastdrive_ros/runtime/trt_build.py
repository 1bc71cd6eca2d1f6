"""Build (or fetch from the cache) a TensorRT engine for an exported encoder+pruner ONNX.

TensorRT 10 (JetPack 6 on Orin) builds an fp32 ONNX at FP16 with the FP16 builder flag; TensorRT
11 removed those flags, builds only strongly typed networks and takes FP16 from the ONNX itself
(`fastdrive export --precision fp16`). Other majors are refused: the cache key pins the version.
The ONNX is linted before building, and the timing cache is merged under a file lock so that
parallel builds on one machine never lose each other's timings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from fastdrive_ros.runtime.engine_cache import (
    BuildSettings,
    DeviceInfo,
    EngineCache,
    EngineKey,
    Precision,
    Profile,
    profile_from_onnx,
)
from fastdrive_ros.runtime.errors import BackendUnavailable, ExportError, ModelFileError
from fastdrive_ros.runtime.onnx_lint import errors, lint_onnx
from fastdrive_ros.runtime.onnx_meta import ExportInfo, read_export
from fastdrive_ros.runtime.optional import tensorrt_major

log = logging.getLogger(__name__)

SUPPORTED_MAJORS = (10, 11)
REBUILD = "delete the cache entry or rebuild with `fastdrive engine --onnx {onnx}`"


def check_trt_version(trt: ModuleType) -> int:
    """The TensorRT major, or BackendUnavailable for a major this code was not written for."""
    major = tensorrt_major(trt)
    if major not in SUPPORTED_MAJORS:
        raise BackendUnavailable(
            "tensorrt",
            f"TensorRT {trt.__version__} is not supported (this code builds with TensorRT "
            f"{' or '.join(map(str, SUPPORTED_MAJORS))})",
        )
    return major


def detect_device(trt: ModuleType, device_id: int = 0) -> DeviceInfo:
    """TensorRT version + compute capability of CUDA device `device_id` (via torch)."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt", "torch sees no CUDA GPU (driver missing or no GPU)")
    major, minor = torch.cuda.get_device_capability(device_id)
    return DeviceInfo(
        trt_version=str(trt.__version__),
        compute_capability=f"{major}.{minor}",
        gpu_name=torch.cuda.get_device_name(device_id),
    )


def settings_for(
    trt_major: int,
    *,
    precision: Precision,
    onnx_precision: str,
    workspace_bytes: int = 1 << 30,
    optimization_level: int = 3,
) -> BuildSettings:
    """Builder settings for a TensorRT major and an ONNX exported at `onnx_precision`.

    TensorRT 11 is strongly typed only: the engine's precision is the ONNX's, so asking for FP16
    from an fp32 ONNX is an error that says how to export an fp16 one. TensorRT 10 builds fp32
    ONNX weakly typed (FP16 flag when asked) and an fp16 ONNX strongly typed.
    """
    if trt_major >= 11:
        if precision != onnx_precision:
            raise ValueError(
                f"TensorRT {trt_major} builds strongly typed networks only (no FP16 builder flag):"
                f" the ONNX is {onnx_precision}, {precision} was asked; export it with "
                f"`fastdrive export --precision {precision}`"
            )
        strongly_typed = True
    else:
        if onnx_precision == "fp16" and precision == "fp32":
            raise ValueError("an fp16 ONNX cannot be built as an fp32 engine: export it at fp32")
        strongly_typed = onnx_precision == "fp16"
    return BuildSettings(
        precision=precision,
        strongly_typed=strongly_typed,
        workspace_bytes=workspace_bytes,
        optimization_level=optimization_level,
    )


def create_network(trt: ModuleType, builder: object, settings: BuildSettings) -> object:
    """An empty network: strongly typed (flag on 10, the default on 11) or weakly typed (10)."""
    if tensorrt_major(trt) >= 11:
        return builder.create_network(0)  # type: ignore[attr-defined]
    flags = 0
    if settings.strongly_typed:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)  # type: ignore[attr-defined]


def configure(
    trt: ModuleType, builder: object, settings: BuildSettings, profile: Profile
) -> object:
    """Builder config: workspace, optimization level, FP16 flag (TensorRT 10 only), profile."""
    config = builder.create_builder_config()  # type: ignore[attr-defined]
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.builder_optimization_level = settings.optimization_level
    if tensorrt_major(trt) < 11 and not settings.strongly_typed and settings.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()  # type: ignore[attr-defined]
    for shape in profile.shapes:
        opt_profile.set_shape(shape.name, shape.min, shape.opt, shape.max)
    config.add_optimization_profile(opt_profile)
    return config


def build_serialized(
    trt: ModuleType,
    onnx_path: Path,
    settings: BuildSettings,
    profile: Profile,
    cache: EngineCache,
    device: DeviceInfo,
) -> bytes:
    """Parse the ONNX and build a serialized engine, reading and merging the timing cache."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = create_network(trt, builder, settings)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        problems = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(
            onnx_path,
            f"TensorRT's ONNX parser rejected it ({problems or 'no detail'})",
            "run `fastdrive export` again and check its lint output",
        )
    config = configure(trt, builder, settings, profile)
    timing_path = cache.timing_cache_path(device)
    with cache.lock(timing_path):
        timing = config.create_timing_cache(cache.read_timing_cache(device))
    config.set_timing_cache(timing, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable("tensorrt", f"engine build failed for {onnx_path} (see log)")
    with cache.lock(timing_path):
        merged = config.create_timing_cache(cache.read_timing_cache(device))
        merged.combine(config.get_timing_cache(), False)
        cache.write_timing_cache(device, bytes(merged.serialize()))
    return bytes(serialized)


@dataclass(frozen=True)
class EngineResult:
    """A ready engine file and how it was obtained ("cache" or "built")."""

    engine: Path
    key: EngineKey
    source: str
    seconds: float


def ensure_engine(
    trt: ModuleType,
    onnx_path: str | Path,
    *,
    precision: Precision,
    device: DeviceInfo,
    cache: EngineCache,
    build: bool = True,
    workspace_bytes: int = 1 << 30,
    optimization_level: int = 3,
    info: ExportInfo | None = None,
) -> EngineResult:
    """Return a cached engine for this exact ONNX/settings/TensorRT/GPU, building it if allowed.

    A corrupt entry is rebuilt (build=True) or reported as ModelFileError (build=False), never
    loaded. Builds hold a lock on the engine path so two processes do not build the same engine.
    """
    start = time.perf_counter()
    major = check_trt_version(trt)
    if device.trt_major != major:
        raise ValueError(f"device info is for TensorRT {device.trt_version}, loaded {major}")
    info = info if info is not None else read_export(onnx_path)
    try:
        settings = settings_for(
            major,
            precision=precision,
            onnx_precision=info.metadata.precision,
            workspace_bytes=workspace_bytes,
            optimization_level=optimization_level,
        )
    except ValueError as exc:
        raise ModelFileError(
            info.path, str(exc), "export the ONNX at the engine's precision"
        ) from exc
    profile = profile_from_onnx(info.path)
    key = EngineKey(info.content_hash, info.path.name, settings, profile, device)
    remedy = REBUILD.format(onnx=info.path)
    status = cache.check(key)
    if status.state == "hit":
        return EngineResult(status.engine, key, "cache", time.perf_counter() - start)
    if not build:
        problem = (
            "no engine in the cache for this ONNX, precision, TensorRT version and GPU"
            if status.state == "miss"
            else f"cached engine is unusable ({status.reason})"
        )
        raise ModelFileError(status.engine, problem, remedy)
    with cache.lock(cache.engine_path(key)):
        status = cache.check(key)  # another process may have built it meanwhile
        if status.state == "hit":
            return EngineResult(status.engine, key, "cache", time.perf_counter() - start)
        if status.state == "corrupt":
            log.warning("rebuilding %s: %s", status.engine.name, status.reason)
            cache.remove(key)
        bad = errors(lint_onnx(info.path))
        if bad:
            raise ExportError(
                f"{info.path} fails the TensorRT lint: " + "; ".join(str(f) for f in bad)
            )
        log.info("building TensorRT engine %s (this takes minutes)", status.engine.name)
        built = time.perf_counter()
        data = build_serialized(trt, info.path, settings, profile, cache, device)
        engine = cache.store(
            key, data, build_seconds=time.perf_counter() - built, onnx_path=info.path
        )
    return EngineResult(engine, key, "built", time.perf_counter() - start)
