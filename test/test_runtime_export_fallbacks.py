"""Export failure paths: legacy fall-back (with its reason); a failed lint leaves no file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fastdrive_ros.runtime import onnx_export
from fastdrive_ros.runtime.errors import ExportError
from fastdrive_ros.runtime.onnx_lint import LintFinding
from fastdrive_ros.runtime.onnx_meta import read_export

pytest.importorskip("onnx")
support = pytest.importorskip("test_runtime_support")
torch.set_num_threads(2)


def _dynamo_breaks(*args, **kwargs) -> None:
    raise RuntimeError("data-dependent index in window attention")


def test_dynamo_failure_falls_back_to_legacy_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_export, "_export_dynamo", _dynamo_breaks)
    parts = support.make_parts(cameras=2)
    result = onnx_export.export_encoder_pruner(parts, tmp_path / "g.onnx")
    assert result.metadata.exporter.startswith("legacy: dynamo failed (RuntimeError")
    assert "window attention" in result.metadata.exporter
    info = read_export(result.path)
    assert info.metadata.exporter == result.metadata.exporter
    assert not [f for f in result.findings if f.level == "error"]
    assert json.loads(result.sidecar.read_text())["exporter"].startswith("legacy:")


def test_without_fallback_a_dynamo_failure_is_an_export_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_export, "_export_dynamo", _dynamo_breaks)
    with pytest.raises(ExportError, match="dynamo export failed"):
        onnx_export.export_encoder_pruner(
            support.make_parts(), tmp_path / "g.onnx", allow_legacy_fallback=False
        )
    assert list(tmp_path.iterdir()) == []


def test_lint_failure_leaves_no_model_behind(tmp_path: Path, monkeypatch) -> None:
    bad = LintFinding("error", "topk-k-limit", "TopK K=4000 but TensorRT needs K < 3840", "t")
    monkeypatch.setattr(onnx_export, "lint_onnx", lambda path: [bad])
    with pytest.raises(ExportError, match="topk-k-limit"):
        onnx_export.export_encoder_pruner(support.make_parts(), tmp_path / "g.onnx")
    assert list(tmp_path.iterdir()) == []  # no half-written file, no staging folder


def test_unexportable_selector_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot be exported"):
        onnx_export.export_encoder_pruner(
            support.make_parts(), tmp_path / "g.onnx", selector="divprune"
        )
