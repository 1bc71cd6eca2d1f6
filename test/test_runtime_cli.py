"""`fastdrive export` on a real (tiny, random) VLA bundle, and `fastdrive engine` without a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fastdrive_ros.cli import build_app
from fastdrive_ros.runtime.engine_cache import (
    BuildSettings,
    DeviceInfo,
    EngineCache,
    EngineKey,
    Profile,
    ProfileShape,
)

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch.set_num_threads(2)
runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from fastdrive_ros.nn.configs import tiny_config
    from fastdrive_ros.nn.vla import VLA

    folder = tmp_path_factory.mktemp("vla")
    VLA.build(tiny_config(cameras=2)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(bundle: Path):
    result = runner.invoke(build_app(), ["export", "--model", str(bundle), "--threads", "1"])
    return result


def test_export_writes_the_default_file_with_parity(bundle: Path, exported) -> None:
    assert exported.exit_code == 0, exported.output
    onnx_path = bundle / "onnx" / "encoder_pruner-reconpruner-p050.onnx"
    assert onnx_path.is_file()
    assert "export parity" in exported.output and "FAIL" not in exported.output
    sidecar = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text())
    assert sidecar["parity"]["ok"] and len(sidecar["parity"]["cases"]) == 2
    assert sidecar["plan"]["keep"] == 6  # 2 cameras x 6 tokens, half kept


def test_the_export_serves_the_bundle(bundle: Path, exported) -> None:
    from fastdrive_ros.runtime.backend_select import choose_backend

    assert exported.exit_code == 0
    choice = choose_backend("onnxruntime", model_folder=bundle)
    out = choice.backend.run(torch.randn(2, 3, 56, 84))
    assert out.kept_tokens.shape == (6, 64)
    choice.backend.close()


def test_export_of_a_missing_model_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(build_app(), ["export", "--model", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "model folder not found" in result.output


def test_export_rejects_bad_options(bundle: Path) -> None:
    result = runner.invoke(build_app(), ["export", "--model", str(bundle), "--opset", "21"])
    assert result.exit_code == 2 and "opset" in result.output
    result = runner.invoke(build_app(), ["export", "--model", str(bundle), "--precision", "int8"])
    assert result.exit_code == 2 and "precision" in result.output


def test_export_never_replaces_a_file_without_force(bundle: Path, exported) -> None:
    """Issue 11: `fastdrive export --model models/default` silently replaced the shipped ONNX."""
    assert exported.exit_code == 0
    onnx_path = bundle / "onnx" / "encoder_pruner-reconpruner-p050.onnx"
    before = onnx_path.read_bytes()
    result = runner.invoke(build_app(), ["export", "--model", str(bundle), "--threads", "1"])
    assert result.exit_code == 2 and "--force" in result.output and str(onnx_path) in result.output
    assert onnx_path.read_bytes() == before


def test_export_checks_its_numbers_and_paths(bundle: Path, tmp_path: Path) -> None:
    base = ["export", "--model", str(bundle)]
    result = runner.invoke(build_app(), [*base, "--bench", "--runs", "0"])
    assert result.exit_code == 2 and "--runs" in result.output  # was: bench silently skipped
    result = runner.invoke(build_app(), [*base, "--out", f"{tmp_path}/"])
    assert result.exit_code == 2 and "is a folder" in result.output  # was: a traceback


def test_export_writes_the_opset_it_says(bundle: Path, tmp_path: Path) -> None:
    """Issue 11: `--opset 17` wrote opset 18 and labelled it 17."""
    out = tmp_path / "o17.onnx"
    result = runner.invoke(
        build_app(), ["export", "--model", str(bundle), "--opset", "17", "--out", str(out),
                      "--no-parity", "--threads", "1"],
    )  # fmt: skip
    if result.exit_code == 0:  # an exporter that can write 17: then the file must hold 17
        import onnx

        model = onnx.load(str(out), load_external_data=False)
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert json.loads(out.with_name(out.name + ".json").read_text())["opset"] == 17
    else:
        assert result.exit_code == 2, result.output
        assert "asked for opset 17" in result.output and "wrote opset 18" in result.output
        assert not out.exists()


def test_engine_list_shows_entries_and_damage(tmp_path: Path) -> None:
    cache = EngineCache(root=tmp_path)
    shape = ProfileShape("pixels", (2, 3, 56, 84), (2, 3, 56, 84), (2, 3, 56, 84))
    key = EngineKey(
        "a" * 64,
        "encoder_pruner-reconpruner-p050.onnx",
        BuildSettings(precision="fp16", strongly_typed=False),
        Profile((shape,)),
        DeviceInfo("10.3.0", "8.7", "Orin"),
    )
    cache.store(key, b"engine", build_seconds=42.0)
    wide = {"COLUMNS": "200"}
    result = runner.invoke(build_app(), ["engine", "--list", "--cache", str(tmp_path)], env=wide)
    assert result.exit_code == 0
    assert "10.3.0" in result.output and "ok" in result.output and "Orin" in result.output
    cache.engine_path(key).write_bytes(b"enginX")
    result = runner.invoke(build_app(), ["engine", "--list", "--cache", str(tmp_path)], env=wide)
    assert "corrupt" in result.output


def test_engine_without_tensorrt_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = runner.invoke(
        build_app(), ["engine", "--onnx", str(tmp_path / "m.onnx"), "--build-only"]
    )
    assert result.exit_code == 2 and "tensorrt" in result.output
    result = runner.invoke(build_app(), ["engine"])
    assert result.exit_code == 2 and "--onnx" in result.output
