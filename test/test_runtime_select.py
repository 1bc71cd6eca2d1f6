"""backend: auto|tensorrt|onnxruntime|torch on this CPU-only machine: what runs and why."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from fastdrive_ros.runtime.backend_select import choose_backend, select_backend
from fastdrive_ros.runtime.errors import BackendUnavailable, ModelFileError
from fastdrive_ros.runtime.onnx_meta import default_onnx_path

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
support = pytest.importorskip("test_runtime_support")
torch.set_num_threads(2)

needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Stand-in model parts living in a folder, exported to the folder's default ONNX path."""
    from fastdrive_ros.runtime.onnx_export import export_encoder_pruner

    folder = tmp_path_factory.mktemp("model")
    parts = dataclasses.replace(support.make_parts(cameras=2), folder=folder)
    export_encoder_pruner(parts, default_onnx_path(folder, "reconpruner", 0.5), prune_ratio=0.5)
    return parts


@needs_cpu_only
def test_auto_on_cpu_probes_ort_against_torch(bundle, caplog) -> None:
    caplog.set_level(logging.INFO, logger="fastdrive_ros.runtime.backend_select")
    choice = choose_backend("auto", model=bundle, probe_runs=1)
    assert "no CUDA GPU" in choice.refusals["tensorrt"]
    assert "onnxruntime-gpu" in choice.refusals
    assert set(choice.probe_ms) == {"onnxruntime-cpu", "torch"}
    faster = min(choice.probe_ms, key=choice.probe_ms.get)
    assert choice.name == ("onnxruntime" if faster == "onnxruntime-cpu" else "torch")
    assert "encoder+pruner backend" in caplog.text and "not tensorrt" in caplog.text
    out = choice.backend.run(torch.randn(bundle.input_shape))
    assert out.kept_index.shape == (bundle.tokens_per_camera,)  # half of 2 cameras
    choice.backend.close()


@needs_cpu_only
def test_auto_without_probe_prefers_onnxruntime_cpu(bundle) -> None:
    choice = choose_backend("auto", model=bundle, probe_runs=0)
    assert choice.name == "onnxruntime" and "not probed" in choice.refusals["torch"]


def test_auto_falls_back_to_torch_without_an_export(bundle, tmp_path, caplog) -> None:
    parts = dataclasses.replace(bundle, folder=tmp_path)  # a folder with no onnx/
    with caplog.at_level(logging.INFO, logger="fastdrive_ros.runtime.backend_select"):
        choice = choose_backend("auto", model=parts)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # routine: INFO
    assert choice.name == "torch"
    assert "not found" in choice.refusals["onnxruntime-cpu"]
    assert "fastdrive export" in choice.refusals["onnxruntime-cpu"]


def test_stale_export_is_refused_by_auto_and_an_error_when_asked_for(bundle, caplog) -> None:
    retrained = dataclasses.replace(support.make_parts(cameras=2, seed=5), folder=bundle.folder)
    with caplog.at_level(logging.INFO, logger="fastdrive_ros.runtime.backend_select"):
        choice = choose_backend("auto", model=retrained)
    assert choice.name == "torch" and "other weights" in choice.refusals["onnxruntime-cpu"]
    # issue 11: a mismatched ONNX is news (WARNING naming the file), not routine INFO
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "broken file" in warning.getMessage() and ".onnx" in warning.getMessage()
    assert "ONNX file is broken" in choice.reason
    with pytest.raises(ModelFileError, match="other weights") as err:
        choose_backend("onnxruntime", model=retrained)
    assert "fastdrive export" in err.value.remedy


def test_other_prune_ratio_is_not_served_by_the_export(bundle) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        choose_backend("onnxruntime", model=bundle, prune_ratio=0.25)  # no p025 file
    onnx_path = default_onnx_path(bundle.folder, "reconpruner", 0.5)
    with pytest.raises(ModelFileError, match="K=24"):
        choose_backend("onnxruntime", model=bundle, prune_ratio=0.25, onnx_path=onnx_path)


def test_explicit_choices(bundle) -> None:
    ort = select_backend("onnxruntime", model=bundle, ort_threads=1)
    assert ort.name == "onnxruntime"
    ort.close()
    reference = select_backend("torch", model=bundle, device="cpu")
    assert reference.name == "torch"
    out = reference.run(torch.randn(bundle.input_shape))
    assert set(out.timings_ms) == {"encode", "prune"}
    with pytest.raises(ValueError, match="backend must be one of"):
        select_backend("fastest", model=bundle)


@needs_cpu_only
def test_explicit_tensorrt_without_gpu_fails_loudly(bundle) -> None:
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        select_backend("tensorrt", model=bundle)


def test_torch_only_selectors_run_on_torch(bundle) -> None:
    choice = choose_backend("auto", model=bundle, selector="random")
    assert choice.name == "torch"
    assert "not exported" in choice.refusals["onnxruntime-cpu"]
    out = choice.backend.run(torch.randn(bundle.input_shape))
    assert out.kept_index.numel() == bundle.tokens_per_camera


def test_model_without_folder_or_onnx_path_runs_torch(bundle) -> None:
    parts = dataclasses.replace(bundle, folder=None)
    choice = choose_backend("auto", model=parts)
    assert choice.name == "torch" and "no onnx_path" in choice.refusals["onnxruntime-cpu"]


@needs_cpu_only
def test_auto_decision_is_measured_once_then_cached_per_machine_and_model(
    bundle, tmp_path, monkeypatch
) -> None:
    """Issue 11: auto chose torch in one run and ORT '8.50x faster' in the next. The figures now
    come from alternating runs, are reported, and the next start reuses them: same choice."""
    first = choose_backend("auto", model=bundle, probe_runs=3, probe_cache_dir=tmp_path)
    assert "median of 3 alternating runs" in first.reason and "measured now" in first.reason
    assert set(first.probe_ms) == {"onnxruntime-cpu", "torch"}
    assert (tmp_path / "backend_choice.json").is_file()
    first.backend.close()

    def no_probe(*args, **kwargs):
        raise AssertionError("probed again although this machine and model were measured")

    monkeypatch.setattr("fastdrive_ros.runtime.backend_select.alternating_medians", no_probe)
    again = choose_backend("auto", model=bundle, probe_runs=3, probe_cache_dir=tmp_path)
    assert again.name == first.name and again.probe_ms == first.probe_ms
    assert "cached from" in again.reason
    again.backend.close()


def test_the_decision_key_changes_with_the_model_and_threads() -> None:
    from fastdrive_ros.runtime.backend_probe import decision_key

    base = dict(model_hash="a", onnx_hash="b", input_shape=(6, 3, 280, 504), ort_threads=2)
    key = decision_key(**base)
    assert key == decision_key(**base)
    assert key != decision_key(**{**base, "model_hash": "c"})
    assert key != decision_key(**{**base, "onnx_hash": "d"})
    assert key != decision_key(**{**base, "ort_threads": 1})


def test_probe_alternates_and_takes_medians() -> None:
    """A load spike during one run must not decide: medians of alternating runs."""
    import numpy as np

    from fastdrive_ros.runtime.backend_probe import alternating_medians

    calls: list[str] = []

    class Fake:
        def __init__(self, name: str, ms: list[float]) -> None:
            self.name, self.ms = name, iter(ms)

        def run(self, pixels) -> None:
            import time

            calls.append(self.name)
            time.sleep(next(self.ms) / 1e3)

    # ORT is 2 ms vs torch 6 ms, except one 40 ms stall of ORT: a mean would pick torch
    ort = Fake("ort", [0, 2, 40, 2, 2, 2])
    ref = Fake("torch", [0, 6, 6, 6, 6, 6])
    result = alternating_medians(ort, ref, np.zeros(1), runs=5)
    assert calls[2:] == ["ort", "torch"] * 5  # after one warm-up each
    assert result.winner == "onnxruntime-cpu" and result.ort_ms < result.torch_ms
    assert "median of 5 alternating runs" in result.describe()
