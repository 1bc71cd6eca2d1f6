"""A missing, corrupt or mismatched model at start: a clear error naming the file and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.factory import PipelineParams, build_pipeline, resolve_model_dir
from fastdrive_ros.pipeline.fakes import shared_tiny_model
from fastdrive_ros.runtime.errors import ModelFileError, RuntimeSetupError


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return shared_tiny_model(tmp_path_factory.getbasetemp())


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good, tmp_path / "model"))


def _build(folder: Path, **kw) -> None:
    params = PipelineParams(
        model_dir=folder, backend=kw.pop("backend", "torch"), device="cpu", warm_up=False, **kw
    )
    build_pipeline(params)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        _build(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "build-default" in str(info.value)


def test_no_default_model_installed(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTDRIVE_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(
        "fastdrive_ros.pipeline.factory.default_model_candidates", lambda: [tmp_path / "empty"]
    )
    with pytest.raises(ModelFileError) as info:
        resolve_model_dir("")
    assert "make models" in str(info.value)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("no_config", "config.json"),
        ("bad_json", "config.json"),
        ("truncated_weights", "model.safetensors"),
        ("garbage_weights", "model.safetensors"),
        ("no_weights", "model.safetensors"),
        ("no_pruner", "pruner"),
        ("wrong_shape", "model.safetensors"),
        ("flipped_weights", "model.safetensors"),  # issue 11: loaded silently before
        ("flipped_pruner", "reconpruner.safetensors"),
        ("truncated_pruner", "reconpruner.safetensors"),  # issue 11: a traceback before
        ("truncated_pruner_unlisted", "reconpruner.safetensors"),
        ("bad_manifest", "SHA256SUMS"),
    ],
)
def test_damaged_bundle(copy: Path, damage: str, needle: str) -> None:
    weights = copy / "model.safetensors"
    if damage == "no_config":
        (copy / "config.json").unlink()
    elif damage == "bad_json":
        (copy / "config.json").write_text("{ not json")
    elif damage == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage_weights":
        weights.write_bytes(b"\x00" * 4096)
    elif damage == "no_weights":
        weights.unlink()
    elif damage == "flipped_weights":
        flip_tensor_bytes(weights)
    elif damage == "flipped_pruner":
        flip_tensor_bytes(copy / "pruner" / "reconpruner.safetensors")
    elif damage.startswith("truncated_pruner"):
        pruner = copy / "pruner" / "reconpruner.safetensors"
        pruner.write_bytes(pruner.read_bytes()[: pruner.stat().st_size // 2])
        if damage.endswith("unlisted"):  # no hash to compare with: safetensors' own check
            (copy / "pruner" / "SHA256SUMS").unlink()
    elif damage == "bad_manifest":
        (copy / "SHA256SUMS").write_text("not a hash  model.safetensors\n")
    elif damage == "no_pruner":
        shutil.rmtree(copy / "pruner")
    elif damage == "wrong_shape":  # config edited after training: weights no longer fit
        config = json.loads((copy / "config.json").read_text())
        qwen = config["qwen"]
        qwen.get("text_config", qwen)["intermediate_size"] = 96  # flat or nested text config
        (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError) as info:
        _build(copy)
    message = str(info.value)
    assert str(copy) in message and needle in message, message
    assert "To fix:" in message
    if damage.startswith("flipped"):
        assert "does not match its recorded content hash" in message


def flip_tensor_bytes(path: Path, count: int = 2000) -> None:
    """Flip `count` bytes inside the tensor data (not the header: that would fail to parse)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # u64 header length, then the JSON header
    middle = start + (len(data) - start) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_weights_saved_by_an_older_version_load_with_a_warning(copy: Path, caplog) -> None:
    (copy / "SHA256SUMS").unlink()
    with caplog.at_level("WARNING", logger="fastdrive_ros.nn"):
        _build(copy)
    assert "model.safetensors not verified" in caplog.text and "SHA256SUMS" in caplog.text


def test_cameras_not_matching_the_model(good: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        _build(good, config=PipelineConfig(camera_names=("CAM_FRONT",)))
    assert "camera_names" in str(info.value) and "CAM_BACK" in str(info.value)


def test_backend_that_cannot_run_here(good: Path) -> None:
    with pytest.raises(RuntimeSetupError) as info:
        _build(good, backend="onnxruntime")  # no exported ONNX in the folder
    assert "fastdrive export" in str(info.value)
