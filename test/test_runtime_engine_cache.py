"""Engine cache keys, manifests, corruption detection and optimization profiles (no TensorRT)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fastdrive_ros.runtime.engine_cache import (
    BuildSettings,
    DeviceInfo,
    EngineCache,
    EngineKey,
    Profile,
    ProfileShape,
    compute_profile,
    default_cache_dir,
)

PROFILE = Profile((ProfileShape("pixels", (6, 3, 252, 448), (6, 3, 252, 448), (6, 3, 252, 448)),))
DEVICE = DeviceInfo(trt_version="10.3.0", compute_capability="8.7", gpu_name="Orin")
SETTINGS = BuildSettings(precision="fp16", strongly_typed=False)


def key(**changes: object) -> EngineKey:
    base = EngineKey("a" * 64, "encoder_pruner-reconpruner-p050.onnx", SETTINGS, PROFILE, DEVICE)
    return dataclasses.replace(base, **changes)


def test_every_input_of_the_key_changes_the_digest() -> None:
    variants = [
        key(),
        key(onnx_sha256="b" * 64),
        key(settings=dataclasses.replace(SETTINGS, precision="fp32")),
        key(settings=dataclasses.replace(SETTINGS, strongly_typed=True)),
        key(settings=dataclasses.replace(SETTINGS, workspace_bytes=2 << 30)),
        key(settings=dataclasses.replace(SETTINGS, optimization_level=5)),
        key(
            profile=Profile(
                (
                    ProfileShape("pixels", (6, 3, 252, 448), (6, 3, 252, 448), (6, 3, 252, 448)),
                    ProfileShape("extra", (1,), (1,), (1,)),
                )
            )
        ),
        key(
            profile=Profile(
                (ProfileShape("pixels", (1, 3, 252, 448), (6, 3, 252, 448), (6, 3, 252, 448)),)
            )
        ),
        key(device=dataclasses.replace(DEVICE, trt_version="10.4.0")),
        key(device=dataclasses.replace(DEVICE, trt_version="11.0.0")),
        key(device=dataclasses.replace(DEVICE, compute_capability="9.0")),
    ]
    digests = [k.digest for k in variants]
    assert len(set(digests)) == len(digests)
    # the file name carries precision, GPU architecture and TensorRT major for people to read
    assert key().stem.startswith("encoder_pruner-reconpruner-p050-fp16-sm87-trt10-")
    assert "-trt11-" in variants[9].stem and "-sm90-" in variants[10].stem


def test_the_gpu_name_alone_does_not_change_the_key() -> None:
    assert key().digest == key(device=dataclasses.replace(DEVICE, gpu_name="other")).digest


def test_store_then_hit(tmp_path: Path) -> None:
    cache = EngineCache(root=tmp_path)
    assert cache.check(key()).state == "miss"
    engine = cache.store(key(), b"engine-bytes", build_seconds=1.5, onnx_path="m.onnx")
    status = cache.check(key())
    assert status.state == "hit" and status.engine == engine
    manifest = json.loads(cache.manifest_path(key()).read_text())
    assert manifest["onnx_sha256"] == "a" * 64 and manifest["compute_capability"] == "8.7"
    assert manifest["trt_major"] == 10 and manifest["engine_bytes"] == len(b"engine-bytes")
    # another ONNX or TensorRT version never sees this engine
    assert cache.check(key(onnx_sha256="b" * 64)).state == "miss"
    assert cache.check(key(device=dataclasses.replace(DEVICE, trt_version="10.4.0"))).state == (
        "miss"
    )


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda c, k: c.engine_path(k).write_bytes(b"engine-byteX"), "hash"),
        (lambda c, k: c.engine_path(k).write_bytes(b"engine"), "size"),
        (lambda c, k: c.manifest_path(k).unlink(), "without manifest"),
        (lambda c, k: c.engine_path(k).unlink(), "without engine"),
        (lambda c, k: c.manifest_path(k).write_text("{not json"), "unreadable"),
    ],
)
def test_damaged_entries_are_corrupt_not_hits(tmp_path: Path, damage, reason: str) -> None:
    cache = EngineCache(root=tmp_path)
    cache.store(key(), b"engine-bytes", build_seconds=0.1)
    damage(cache, key())
    status = cache.check(key())
    assert status.state == "corrupt" and reason in status.reason


def test_entries_list_what_is_cached(tmp_path: Path) -> None:
    cache = EngineCache(root=tmp_path)
    cache.store(key(), b"1", build_seconds=0.1)
    cache.store(key(onnx_sha256="b" * 64), b"22", build_seconds=0.1)
    entries = cache.entries()
    assert {e.manifest["engine_bytes"] for e in entries} == {1, 2}
    assert all(e.present for e in entries)
    cache.remove(key())
    assert len(cache.entries()) == 1


def test_timing_cache_is_per_gpu_and_trt_version(tmp_path: Path) -> None:
    cache = EngineCache(root=tmp_path)
    other = dataclasses.replace(DEVICE, compute_capability="9.0")
    assert cache.timing_cache_path(DEVICE) != cache.timing_cache_path(other)
    cache.write_timing_cache(DEVICE, b"timings")
    with cache.lock(cache.timing_cache_path(DEVICE)):
        assert cache.read_timing_cache(DEVICE) == b"timings"
    assert cache.read_timing_cache(other) == b""


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTDRIVE_ENGINE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FASTDRIVE_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "fastdrive_ros" / "engines"


def test_static_inputs_give_a_fixed_profile() -> None:
    profile = compute_profile([("pixels", [6, 3, 252, 448])])
    shape = profile.shapes[0]
    assert shape.min == shape.opt == shape.max == (6, 3, 252, 448)


def test_dynamic_inputs_need_a_valid_range() -> None:
    dims = [("pixels", ["cams", 3, 252, 448])]
    with pytest.raises(ValueError, match="dynamic dims"):
        compute_profile(dims)
    profile = compute_profile(
        dims, {"pixels": ((1, 3, 252, 448), (6, 3, 252, 448), (6, 3, 252, 448))}
    )
    assert profile.shapes[0].min[0] == 1 and profile.shapes[0].max[0] == 6
    with pytest.raises(ValueError, match="fixed at 3"):
        compute_profile(dims, {"pixels": ((1, 1, 252, 448), (6, 3, 252, 448), (6, 3, 252, 448))})
    with pytest.raises(ValueError, match="min <= opt <= max"):
        compute_profile(dims, {"pixels": ((6, 3, 252, 448), (1, 3, 252, 448), (6, 3, 252, 448))})
    with pytest.raises(ValueError, match="unknown inputs"):
        compute_profile([("pixels", [6, 3, 8, 8])], {"other": ((1,), (1,), (1,))})
