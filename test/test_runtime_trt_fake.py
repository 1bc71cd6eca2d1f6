"""The TensorRT build path against fake `tensorrt` modules (TensorRT cannot be installed here).

What is checked: TensorRT 10 sets the FP16 builder flag on an fp32 ONNX and builds an fp16 ONNX
strongly typed; TensorRT 11 (which has no FP16 flag) builds strongly typed and refuses an fp32
ONNX for an fp16 engine; the cache is reused, rebuilt when corrupt, and reported clearly when a
build is not allowed; the timing cache is merged; the lint runs before any build.
"""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import pytest

from fastdrive_ros.runtime.engine_cache import DeviceInfo, EngineCache
from fastdrive_ros.runtime.errors import BackendUnavailable, ExportError, ModelFileError
from fastdrive_ros.runtime.trt_build import ensure_engine

support = pytest.importorskip("test_runtime_support")
pytest.importorskip("onnx")


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.entries = set(filter(None, bytes(data).decode().split(",")))

    def combine(self, other: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.entries |= other.entries
        return True

    def serialize(self) -> bytes:
        return ",".join(sorted(self.entries)).encode()


class FakeConfig:
    def __init__(self) -> None:
        self.flags: list[object] = []
        self.pools: dict[object, int] = {}
        self.profiles: list[FakeProfile] = []
        self.builder_optimization_level = 3
        self.timing: FakeTimingCache | None = None

    def set_memory_pool_limit(self, pool: object, size: int) -> None:
        self.pools[pool] = size

    def set_flag(self, flag: object) -> None:
        self.flags.append(flag)

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        return FakeTimingCache(data)

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.timing = cache
        return True

    def get_timing_cache(self) -> FakeTimingCache:
        assert self.timing is not None
        return self.timing


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, low, opt, high) -> None:
        self.shapes[name] = (tuple(low), tuple(opt), tuple(high))


def fake_tensorrt(version: str, log: dict) -> types.ModuleType:
    """A `tensorrt` module with just the builder API ensure_engine uses (per major)."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    major = int(version.split(".")[0])

    class Logger:
        WARNING = "warning"

        def __init__(self, level: str) -> None:
            self.level = level

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.network = network
            self.num_errors = 1 if log.get("parser_fails") else 0

        def parse_from_file(self, path: str) -> bool:
            log["parsed"] = path
            return not log.get("parser_fails", False)

        def get_error(self, i: int) -> str:
            return "fake parser error"

    class Builder:
        def __init__(self, logger: Logger) -> None:
            pass

        def create_network(self, flags: int = 0) -> Network:
            log["network_flags"] = flags
            return Network(flags)

        def create_builder_config(self) -> FakeConfig:
            log["config"] = FakeConfig()
            return log["config"]

        def create_optimization_profile(self) -> FakeProfile:
            return FakeProfile()

        def build_serialized_network(self, network: Network, config: FakeConfig) -> bytes:
            log["builds"] = log.get("builds", 0) + 1
            config.get_timing_cache().entries.add(f"tactic{log['builds']}")
            return f"engine v{version} flags={network.flags} {config.flags}".encode()

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    if major == 10:  # TensorRT 11 removed the precision builder flags
        trt.BuilderFlag = types.SimpleNamespace(FP16="FP16")
        trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=5)
    return trt


def device(version: str) -> DeviceInfo:
    return DeviceInfo(trt_version=version, compute_capability="8.7", gpu_name="Orin")


@pytest.fixture
def onnx32(tmp_path: Path) -> Path:
    return support.write_small_export(tmp_path / "m32.onnx", precision="fp32")


@pytest.fixture
def onnx16(tmp_path: Path) -> Path:
    return support.write_small_export(tmp_path / "m16.onnx", precision="fp16")


def test_trt10_fp32_onnx_gets_the_fp16_builder_flag(tmp_path: Path, onnx32: Path) -> None:
    log: dict = {}
    trt = fake_tensorrt("10.3.0", log)
    result = ensure_engine(
        trt, onnx32, precision="fp16", device=device("10.3.0"), cache=EngineCache(root=tmp_path)
    )
    assert result.source == "built"
    assert log["network_flags"] == 0  # weakly typed
    assert log["config"].flags == ["FP16"]
    assert log["config"].pools == {"workspace": 1 << 30}
    assert log["config"].profiles[0].shapes == {"x": ((16,), (16,), (16,))}
    assert result.key.settings.strongly_typed is False
    assert "-fp16-sm87-trt10-" in result.engine.name


def test_trt10_fp16_onnx_is_built_strongly_typed(tmp_path: Path, onnx16: Path) -> None:
    log: dict = {}
    trt = fake_tensorrt("10.3.0", log)
    result = ensure_engine(
        trt, onnx16, precision="fp16", device=device("10.3.0"), cache=EngineCache(root=tmp_path)
    )
    assert log["network_flags"] == 1 << 5
    assert log["config"].flags == []
    assert result.key.settings.strongly_typed is True


def test_trt11_builds_strongly_typed_without_precision_flags(tmp_path: Path, onnx16: Path) -> None:
    log: dict = {}
    trt = fake_tensorrt("11.1.0", log)  # has no BuilderFlag at all: touching it would fail
    result = ensure_engine(
        trt, onnx16, precision="fp16", device=device("11.1.0"), cache=EngineCache(root=tmp_path)
    )
    assert log["network_flags"] == 0 and log["config"].flags == []
    assert result.key.settings.strongly_typed is True
    assert "-trt11-" in result.engine.name


def test_trt11_refuses_fp16_from_an_fp32_onnx(tmp_path: Path, onnx32: Path) -> None:
    trt = fake_tensorrt("11.1.0", {})
    with pytest.raises(ModelFileError, match="--precision fp16"):
        ensure_engine(
            trt,
            onnx32,
            precision="fp16",
            device=device("11.1.0"),
            cache=EngineCache(root=tmp_path),
        )


def test_unsupported_major_is_refused(tmp_path: Path, onnx32: Path) -> None:
    trt = fake_tensorrt("8.6.1", {})
    with pytest.raises(BackendUnavailable, match="8.6.1 is not supported"):
        ensure_engine(
            trt,
            onnx32,
            precision="fp16",
            device=device("8.6.1"),
            cache=EngineCache(root=tmp_path),
        )


def test_cached_engine_is_reused_and_version_change_rebuilds(tmp_path: Path, onnx32: Path) -> None:
    log: dict = {}
    cache = EngineCache(root=tmp_path)
    trt = fake_tensorrt("10.3.0", log)
    first = ensure_engine(trt, onnx32, precision="fp16", device=device("10.3.0"), cache=cache)
    again = ensure_engine(trt, onnx32, precision="fp16", device=device("10.3.0"), cache=cache)
    assert again.source == "cache" and again.engine == first.engine and log["builds"] == 1
    fp32 = ensure_engine(trt, onnx32, precision="fp32", device=device("10.3.0"), cache=cache)
    assert fp32.source == "built" and fp32.engine != first.engine
    newer = fake_tensorrt("10.4.0", log)
    upgraded = ensure_engine(newer, onnx32, precision="fp16", device=device("10.4.0"), cache=cache)
    assert upgraded.source == "built" and upgraded.engine != first.engine
    other_gpu = dataclasses.replace(device("10.3.0"), compute_capability="9.0")
    moved = ensure_engine(trt, onnx32, precision="fp16", device=other_gpu, cache=cache)
    assert moved.source == "built" and "-sm90-" in moved.engine.name
    assert log["builds"] == 4


def test_changed_onnx_never_reuses_the_old_engine(tmp_path: Path) -> None:
    log: dict = {}
    cache = EngineCache(root=tmp_path / "cache")
    trt = fake_tensorrt("10.3.0", log)
    path = support.write_small_export(tmp_path / "m.onnx", k=8)
    first = ensure_engine(trt, path, precision="fp16", device=device("10.3.0"), cache=cache)
    support.write_small_export(tmp_path / "m.onnx", k=6)  # same name, other graph
    second = ensure_engine(trt, path, precision="fp16", device=device("10.3.0"), cache=cache)
    assert second.source == "built" and second.engine != first.engine


def test_corrupt_engine_is_rebuilt_or_reported(tmp_path: Path, onnx32: Path) -> None:
    log: dict = {}
    cache = EngineCache(root=tmp_path)
    trt = fake_tensorrt("10.3.0", log)
    first = ensure_engine(trt, onnx32, precision="fp16", device=device("10.3.0"), cache=cache)
    first.engine.write_bytes(first.engine.read_bytes()[:5])  # truncated copy
    with pytest.raises(ModelFileError) as err:
        ensure_engine(
            trt, onnx32, precision="fp16", device=device("10.3.0"), cache=cache, build=False
        )
    assert str(first.engine) in str(err.value) and "fastdrive engine" in str(err.value)
    rebuilt = ensure_engine(trt, onnx32, precision="fp16", device=device("10.3.0"), cache=cache)
    assert rebuilt.source == "built" and log["builds"] == 2
    assert cache.check(rebuilt.key).state == "hit"


def test_build_only_mode_without_cache_entry_names_the_command(
    tmp_path: Path, onnx32: Path
) -> None:
    trt = fake_tensorrt("10.3.0", {})
    with pytest.raises(ModelFileError, match="no engine in the cache"):
        ensure_engine(
            trt,
            onnx32,
            precision="fp16",
            device=device("10.3.0"),
            cache=EngineCache(root=tmp_path),
            build=False,
        )


def test_timing_cache_accumulates_over_builds(tmp_path: Path, onnx32: Path) -> None:
    log: dict = {}
    cache = EngineCache(root=tmp_path)
    trt = fake_tensorrt("10.3.0", log)
    ensure_engine(trt, onnx32, precision="fp16", device=device("10.3.0"), cache=cache)
    ensure_engine(trt, onnx32, precision="fp32", device=device("10.3.0"), cache=cache)
    assert cache.read_timing_cache(device("10.3.0")) == b"tactic1,tactic2"


def test_lint_errors_block_the_build(tmp_path: Path) -> None:
    log: dict = {}
    path = support.write_small_export(tmp_path / "big.onnx", k=3900, n=4000)
    with pytest.raises(ExportError, match="topk-k-limit"):
        ensure_engine(
            fake_tensorrt("10.3.0", log),
            path,
            precision="fp16",
            device=device("10.3.0"),
            cache=EngineCache(root=tmp_path),
        )
    assert "builds" not in log


def test_parser_rejection_names_the_onnx(tmp_path: Path, onnx32: Path) -> None:
    log: dict = {"parser_fails": True}
    with pytest.raises(ModelFileError, match="fake parser error") as err:
        ensure_engine(
            fake_tensorrt("10.3.0", log),
            onnx32,
            precision="fp16",
            device=device("10.3.0"),
            cache=EngineCache(root=tmp_path),
        )
    assert err.value.path == onnx32


def _runtime_fake(version: str, log: dict, monkeypatch) -> types.ModuleType:
    """Fake tensorrt with a Runtime, installed in sys.modules; the GPU query is stubbed."""
    from fastdrive_ros.runtime import trt_backend

    trt = fake_tensorrt(version, log)

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i: int) -> str:
            return ["x", "values"][i]

    class Runtime:
        def __init__(self, logger: object) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            log["deserialized"] = data
            return None if log.get("deserialize_fails") else Engine()

    trt.Runtime = Runtime
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", trt)
    monkeypatch.setattr(trt_backend, "detect_device", lambda trt, device_id=0: device(version))
    return trt


def test_engine_tensorrt_cannot_deserialize_is_a_model_file_error(
    tmp_path: Path, onnx32: Path, monkeypatch
) -> None:
    from fastdrive_ros.runtime.trt_backend import TensorRTBackend

    log: dict = {"deserialize_fails": True}
    _runtime_fake("10.3.0", log, monkeypatch)
    with pytest.raises(ModelFileError, match="could not deserialize") as err:
        TensorRTBackend(onnx_path=onnx32, cache_dir=tmp_path / "cache")
    assert err.value.path.suffix == ".engine" and "fastdrive engine" in err.value.remedy
    assert log["deserialized"].startswith(b"engine v10.3.0")  # the cached engine was read


def test_engine_with_other_tensors_is_a_model_file_error(
    tmp_path: Path, onnx32: Path, monkeypatch
) -> None:
    from fastdrive_ros.runtime.trt_backend import TensorRTBackend

    _runtime_fake("10.3.0", {}, monkeypatch)
    with pytest.raises(ModelFileError, match="engine tensors"):
        TensorRTBackend(onnx_path=onnx32, cache_dir=tmp_path / "cache")


def test_runtime_without_a_cached_engine_and_no_build(
    tmp_path: Path, onnx32: Path, monkeypatch
) -> None:
    from fastdrive_ros.runtime.trt_backend import TensorRTBackend

    log: dict = {}
    _runtime_fake("11.0.0", log, monkeypatch)
    with pytest.raises(ModelFileError, match="no engine in the cache"):
        TensorRTBackend(onnx_path=onnx32, precision="fp32", cache_dir=tmp_path, build=False)
    assert "builds" not in log
