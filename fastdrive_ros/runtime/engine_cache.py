"""TensorRT engine cache: a content-addressed key, a manifest per engine, a locked timing cache.

The key hashes everything that makes an engine valid: the ONNX content hash, precision, typing
mode (TensorRT 10 builder flag vs strongly typed), optimization profile, workspace and builder
level, the full TensorRT version (its major is also in the file name) and the GPU's compute
capability. A changed model or flag therefore gets a new file name and can never pick up a stale
engine; Autoware and Isaac ROS key on file names only. A manifest JSON beside each engine records
the fields and the engine's own hash, so a truncated or replaced file is detected before
TensorRT sees it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fastdrive_ros.runtime.hashing import file_sha256

Precision = Literal["fp32", "fp16"]
CACHE_ENV = "FASTDRIVE_ENGINE_CACHE"
MANIFEST_VERSION = 1


def default_cache_dir() -> Path:
    """$FASTDRIVE_ENGINE_CACHE, else $XDG_CACHE_HOME/fastdrive_ros/engines (~/.cache/...)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastdrive_ros" / "engines"


@dataclass(frozen=True)
class ProfileShape:
    """min / opt / max shape of one network input."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One optimization profile: a shape range per network input."""

    shapes: tuple[ProfileShape, ...]

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "min": list(s.min), "opt": list(s.opt), "max": list(s.max)}
            for s in self.shapes
        ]


def compute_profile(
    inputs: Sequence[tuple[str, Sequence[int | str | None]]],
    overrides: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
) -> Profile:
    """Profile for network inputs given as (name, dims); a dim is an int or a symbolic name.

    Fully static inputs get min = opt = max. An input with a dynamic dim needs an override
    (min, opt, max), which must agree with its static dims and satisfy min <= opt <= max.
    """
    overrides = dict(overrides or {})
    shapes = []
    for name, dims in inputs:
        static = all(isinstance(d, int) and d > 0 for d in dims)
        if name not in overrides:
            if not static:
                raise ValueError(
                    f"input {name!r} has dynamic dims {list(dims)}: give its min/opt/max shapes"
                )
            fixed = tuple(int(d) for d in dims)  # type: ignore[arg-type]
            shapes.append(ProfileShape(name, fixed, fixed, fixed))
            continue
        low, opt, high = (tuple(int(v) for v in s) for s in overrides.pop(name))
        if not len(low) == len(opt) == len(high) == len(dims):
            raise ValueError(f"profile for {name!r} must have rank {len(dims)}")
        for axis, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0 and {low[axis], opt[axis], high[axis]} != {dim}:
                raise ValueError(f"input {name!r} axis {axis} is fixed at {dim} in the ONNX")
            if not 1 <= low[axis] <= opt[axis] <= high[axis]:
                raise ValueError(f"profile for {name!r} axis {axis} needs 1 <= min <= opt <= max")
        shapes.append(ProfileShape(name, low, opt, high))
    if overrides:
        raise ValueError(f"profile given for unknown inputs: {', '.join(sorted(overrides))}")
    return Profile(tuple(shapes))


def profile_from_onnx(
    onnx_path: str | Path,
    overrides: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] | None = None,
) -> Profile:
    """compute_profile over the graph inputs of an ONNX file (initializers excluded)."""
    from fastdrive_ros.runtime.optional import import_onnx

    model = import_onnx().load(str(onnx_path), load_external_data=False)
    init_names = {i.name for i in model.graph.initializer}
    inputs = []
    for info in model.graph.input:
        if info.name in init_names:
            continue
        dims: list[int | str | None] = []
        for dim in info.type.tensor_type.shape.dim:
            dims.append(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None))
        inputs.append((info.name, dims))
    return compute_profile(inputs, overrides)


@dataclass(frozen=True)
class DeviceInfo:
    """The build target: TensorRT version and GPU (engines are not portable across either)."""

    trt_version: str
    compute_capability: str  # "8.7" (Orin), "9.0" (H100)...
    gpu_name: str = ""

    @property
    def trt_major(self) -> int:
        return int(self.trt_version.split(".")[0])

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")


@dataclass(frozen=True)
class BuildSettings:
    """Builder choices that change the engine.

    Attributes:
        precision: "fp16" or "fp32". TensorRT 10: the FP16 builder flag on an fp32 ONNX.
            TensorRT 11 (strongly typed only): must equal the ONNX's own precision.
        strongly_typed: network built strongly typed (always on TensorRT 11; on 10 when the ONNX
            already carries the reduced precision).
        workspace_bytes: builder workspace memory pool limit.
        optimization_level: builder_optimization_level (0..5, TensorRT default 3).
    """

    precision: Precision
    strongly_typed: bool
    workspace_bytes: int = 1 << 30
    optimization_level: int = 3

    def __post_init__(self) -> None:
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be 'fp16' or 'fp32', got {self.precision!r}")
        if self.workspace_bytes < (1 << 20):
            raise ValueError("workspace_bytes must be at least 1 MiB")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError("optimization_level must be in 0..5")


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; `digest` names the cache entry."""

    onnx_sha256: str
    onnx_name: str
    settings: BuildSettings
    profile: Profile
    device: DeviceInfo

    def fields(self) -> dict[str, Any]:
        return {
            "onnx_sha256": self.onnx_sha256,
            "settings": asdict(self.settings),
            "profile": self.profile.to_list(),
            "trt_version": self.device.trt_version,
            "trt_major": self.device.trt_major,
            "compute_capability": self.device.compute_capability,
        }

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def stem(self) -> str:
        """e.g. encoder_pruner-reconpruner-p050-fp16-sm87-trt10-1a2b3c4d5e6f7a8b."""
        base = Path(self.onnx_name).stem
        return (
            f"{base}-{self.settings.precision}-{self.device.sm}-trt{self.device.trt_major}"
            f"-{self.digest[:16]}"
        )


@dataclass(frozen=True)
class CacheStatus:
    """Result of looking a key up: "hit" (usable), "miss" (no entry) or "corrupt" (rebuild)."""

    state: Literal["hit", "miss", "corrupt"]
    engine: Path
    reason: str


@dataclass(frozen=True)
class CacheEntry:
    """One engine in the cache, as its manifest describes it."""

    engine: Path
    manifest: dict[str, Any]
    present: bool


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class EngineCache:
    """A folder of `<stem>.engine` + `<stem>.json` manifests + per-device timing caches."""

    def __init__(self, *, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.engine"

    def manifest_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.json"

    def timing_cache_path(self, device: DeviceInfo) -> Path:
        """One timing cache per GPU architecture and TensorRT version (shared by all models)."""
        return self.root / f"timing-{device.sm}-trt{device.trt_version}.cache"

    @contextmanager
    def lock(self, path: Path, timeout_s: float = 1800.0) -> Iterator[None]:
        """Inter-process lock on `path` (a sibling .lock file): one writer at a time."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=timeout_s):
            yield

    def check(self, key: EngineKey) -> CacheStatus:
        """Is there a usable engine for `key`? Verifies manifest, key digest and engine hash."""
        engine, manifest = self.engine_path(key), self.manifest_path(key)
        if not engine.exists() and not manifest.exists():
            return CacheStatus("miss", engine, "no cache entry")
        if not engine.exists():
            return CacheStatus("corrupt", engine, "manifest without engine file")
        if not manifest.exists():
            return CacheStatus("corrupt", engine, "engine file without manifest")
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            return CacheStatus("corrupt", engine, f"unreadable manifest ({exc})")
        if data.get("key") != key.digest:
            return CacheStatus("corrupt", engine, "manifest key differs from the requested key")
        if data.get("engine_bytes") != engine.stat().st_size:
            return CacheStatus("corrupt", engine, "engine size differs from the manifest")
        if data.get("engine_sha256") != file_sha256(engine):
            return CacheStatus("corrupt", engine, "engine hash differs from the manifest")
        return CacheStatus("hit", engine, "cached engine matches the key")

    def store(
        self,
        key: EngineKey,
        engine_bytes: bytes,
        *,
        build_seconds: float,
        onnx_path: str | Path | None = None,
    ) -> Path:
        """Write engine then manifest (atomically each); returns the engine path."""
        engine = self.engine_path(key)
        _atomic_write(engine, engine_bytes)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "key": key.digest,
            **key.fields(),
            "onnx_name": key.onnx_name,
            "onnx_path": str(onnx_path) if onnx_path is not None else None,
            "gpu_name": key.device.gpu_name,
            "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
            "engine_bytes": len(engine_bytes),
            "build_seconds": round(build_seconds, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        _atomic_write(self.manifest_path(key), text.encode())
        return engine

    def remove(self, key: EngineKey) -> None:
        for path in (self.engine_path(key), self.manifest_path(key)):
            path.unlink(missing_ok=True)

    def read_timing_cache(self, device: DeviceInfo) -> bytes:
        path = self.timing_cache_path(device)
        return path.read_bytes() if path.is_file() else b""

    def write_timing_cache(self, device: DeviceInfo, data: bytes) -> None:
        _atomic_write(self.timing_cache_path(device), data)

    def entries(self) -> list[CacheEntry]:
        """Every manifest in the cache (for `fastdrive engine --list`), newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for manifest in self.root.glob("*.json"):
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                data = {"error": "unreadable manifest"}
            engine = manifest.with_suffix(".engine")
            found.append(CacheEntry(engine=engine, manifest=data, present=engine.is_file()))
        return sorted(found, key=lambda e: str(e.manifest.get("created", "")), reverse=True)
