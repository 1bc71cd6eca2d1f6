"""Start-up failures name the file (or backend) and the fix: missing, corrupt, mismatched, fallen
back to CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fastdrive_ros.runtime.errors import BackendUnavailable, MissingDependency, ModelFileError
from fastdrive_ros.runtime.onnx_meta import read_export, sidecar_path

onnx = pytest.importorskip("onnx")
support = pytest.importorskip("test_runtime_support")


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return support.write_small_export(tmp_path / "m.onnx")


def test_missing_onnx_names_file_and_export_command(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as err:
        read_export(tmp_path / "nope.onnx")
    assert err.value.path == tmp_path / "nope.onnx"
    assert "not found" in str(err.value) and "fastdrive export" in str(err.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]),  # truncated
        lambda p: p.write_bytes(b"\x00garbage, not protobuf" * 10),
        lambda p: p.write_bytes(b""),
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_corrupt_onnx_is_a_model_file_error(small: Path, damage) -> None:
    damage(small)
    with pytest.raises(ModelFileError) as err:
        read_export(small)
    assert err.value.path == small and "fastdrive export" in err.value.remedy


def test_onnx_not_written_by_fastdrive_export(small: Path) -> None:
    model = onnx.load(str(small))
    del model.metadata_props[:]
    onnx.save(model, str(small))
    with pytest.raises(ModelFileError, match="not written by fastdrive export"):
        read_export(small)


def test_export_that_failed_parity_is_refused(small: Path) -> None:
    sidecar_path(small).write_text(json.dumps({"parity": {"ok": False}}))
    with pytest.raises(ModelFileError, match="failed its parity check"):
        read_export(small)


def test_missing_external_weights_are_named(tmp_path: Path) -> None:
    path = support.write_small_export(tmp_path / "ext.onnx")
    model = onnx.load(str(path))
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="ext.onnx.data", size_threshold=0
    )
    read_export(path)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(ModelFileError, match="external weights") as err:
        read_export(path)
    assert err.value.path.name == "ext.onnx.data"


def test_onnxruntime_silent_cpu_fallback_is_refused(small: Path, monkeypatch) -> None:
    ort = pytest.importorskip("onnxruntime")
    from fastdrive_ros.runtime.ort_backend import OrtBackend

    # as onnxruntime-gpu on a machine without a usable GPU: CUDA listed, then not used
    listed = [*ort.get_available_providers(), "CUDAExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: listed)
    with pytest.raises(BackendUnavailable) as err:
        OrtBackend(onnx_path=small, providers=("cuda", "cpu"))
    message = str(err.value)
    assert "CUDAExecutionProvider was requested" in message and "fell back" in message
    assert "GPU" in message


def test_provider_missing_from_the_build_says_which_package(small: Path) -> None:
    pytest.importorskip("onnxruntime")
    from fastdrive_ros.runtime.ort_backend import OrtBackend

    with pytest.raises(BackendUnavailable, match=r"ort-gpu"):
        OrtBackend(onnx_path=small, providers=("tensorrt",))


def test_onnxruntime_rejecting_a_file_names_it(small: Path) -> None:
    pytest.importorskip("onnxruntime")
    from fastdrive_ros.runtime.ort_backend import OrtBackend

    model = onnx.load(str(small))
    model.graph.node[0].op_type = "NoSuchOperator"
    onnx.save(model, str(small))
    sidecar_path(small).unlink(missing_ok=True)
    with pytest.raises(ModelFileError, match="onnxruntime cannot load it") as err:
        OrtBackend(onnx_path=small)
    assert err.value.path == small


def test_missing_model_folder(tmp_path: Path) -> None:
    from fastdrive_ros.runtime.model_source import load_model_parts

    with pytest.raises(ModelFileError, match="model folder not found") as err:
        load_model_parts(tmp_path / "absent")
    assert "build-default" in err.value.remedy


def test_model_folder_without_config(tmp_path: Path) -> None:
    from fastdrive_ros.runtime.model_source import load_model_parts

    with pytest.raises(ModelFileError, match="config.json") as err:
        load_model_parts(tmp_path)
    assert err.value.path == tmp_path


def test_tensorrt_missing_says_how_to_install(monkeypatch, small: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    from fastdrive_ros.runtime.trt_backend import TensorRTBackend

    with pytest.raises(MissingDependency, match="JetPack"):
        TensorRTBackend(onnx_path=small)
