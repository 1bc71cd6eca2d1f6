"""Keep plans (global / per-camera / all), fp16 export, and the parity tie rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastdrive_ros.runtime.base import EncoderPrunerOutput
from fastdrive_ros.runtime.keep_plan import TRT_TOPK_MAX_K, plan_keep
from fastdrive_ros.runtime.parity import compare, parity_inputs, run_parity

support = pytest.importorskip("test_runtime_support")
torch.set_num_threads(2)


def test_global_plan_below_the_tensorrt_limit() -> None:
    plan = plan_keep(selector="reconpruner", cameras=6, tokens_per_camera=180, prune_ratio=0.5)
    assert plan.mode == "global" and plan.keep == 540 and plan.topk_sizes == (540,)
    assert plan.selector_keep == 540


def test_large_global_budget_is_split_per_camera() -> None:
    # six 896x1596 cameras: 1824 tokens each, 25% pruned -> K = 8208 > 3839
    plan = plan_keep(selector="reconpruner", cameras=6, tokens_per_camera=1824, prune_ratio=0.25)
    assert plan.mode == "per_camera" and plan.keep == 8208
    assert sum(plan.keep_per_camera) == 8208 and max(plan.topk_sizes) <= TRT_TOPK_MAX_K
    assert "exceeds TensorRT's TopK limit" in plan.reason


def test_per_camera_budget_mode_and_the_none_selector() -> None:
    plan = plan_keep(
        selector="reconpruner",
        cameras=3,
        tokens_per_camera=10,
        prune_ratio=0.5,
        budget="per_camera",
    )
    assert plan.mode == "per_camera" and plan.keep_per_camera == (5, 5, 5)
    keep_all = plan_keep(selector="none", cameras=3, tokens_per_camera=10, prune_ratio=0.5)
    assert keep_all.mode == "all" and keep_all.keep == 30 and keep_all.topk_sizes == ()


def test_impossible_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be exported"):
        plan_keep(selector="divprune", cameras=1, tokens_per_camera=10, prune_ratio=0.5)
    with pytest.raises(ValueError, match="TopK limit"):
        plan_keep(selector="reconpruner", cameras=1, tokens_per_camera=10944, prune_ratio=0.25)


def out(index: list[int], scores: list[float], tokens: np.ndarray | None = None):
    idx = torch.tensor(index)
    tok = torch.zeros(len(index), 2) if tokens is None else torch.from_numpy(tokens)
    return EncoderPrunerOutput(
        kept_tokens=tok,
        kept_index=idx,
        grid_thw=torch.ones(1, 3, dtype=torch.long),
        scores=torch.tensor(scores),
    )


def test_near_tie_flip_passes_and_real_flip_fails() -> None:
    plan = plan_keep(selector="reconpruner", cameras=1, tokens_per_camera=4, prune_ratio=0.5)
    ref = out([0, 1], [0.9, 0.50000, 0.49999, 0.1])
    tie = compare(
        "t", ref, out([0, 2], [0.9, 0.5, 0.5, 0.1]), plan, token_tol=1e-3, tie_floor=1e-6
    )
    assert tie.ok and tie.index_diffs == 1 and tie.note == "near-tie flips"
    real = compare(
        "r", ref, out([0, 3], [0.9, 0.5, 0.5, 0.1]), plan, token_tol=1e-3, tie_floor=1e-6
    )
    assert not real.ok and "score margin" in real.note


def test_flip_among_tiny_scores_needs_a_score_error_that_explains_it() -> None:
    # untrained pruners give scores ~1e-5 apart: an absolute tie tolerance would excuse anything
    plan = plan_keep(selector="reconpruner", cameras=1, tokens_per_camera=4, prune_ratio=0.5)
    ref = out([0, 1], [1e-5, 2e-6, 1e-6, 0.0])
    case = compare(
        "s",
        ref,
        out([0, 2], [1e-5, 2e-6 + 1e-9, 1e-6, 0.0]),
        plan,
        token_tol=1e-3,
        tie_floor=1e-6,
    )
    assert not case.ok and case.index_diffs == 1


def test_token_error_beyond_tolerance_fails() -> None:
    plan = plan_keep(selector="reconpruner", cameras=1, tokens_per_camera=4, prune_ratio=0.5)
    ref = out([0, 1], [0.9, 0.8, 0.1, 0.0], np.zeros((2, 2), np.float32))
    bad = out([0, 1], [0.9, 0.8, 0.1, 0.0], np.full((2, 2), 0.01, np.float32))
    case = compare("x", ref, bad, plan, token_tol=1e-3, tie_floor=1e-6)
    assert not case.ok and "token error" in case.note


def _export(parts, tmp_path, **kwargs):
    from fastdrive_ros.runtime.onnx_export import export_encoder_pruner

    return export_encoder_pruner(parts, tmp_path / "g.onnx", **kwargs)


def _parity(parts, result, precision="fp32"):
    from fastdrive_ros.runtime.ort_backend import OrtBackend
    from fastdrive_ros.runtime.torch_backend import TorchBackend

    plan = result.metadata.plan
    ref = TorchBackend(
        parts=parts,
        selector=parts.selector(result.metadata.selector),
        keep=plan.selector_keep,
        device="cpu",
    )
    with OrtBackend(onnx_path=result.path, threads=2) as ort:
        return run_parity(ref, ort, parity_inputs(parts.input_shape), plan, precision=precision)


def test_per_camera_export_keeps_each_cameras_budget(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    parts = support.make_parts(cameras=3, budget="per_camera")
    result = _export(parts, tmp_path, prune_ratio=0.6)
    plan = result.metadata.plan
    assert plan.mode == "per_camera" and len([f for f in result.findings if f.code == "topk"]) == 6
    cases = _parity(parts, result)
    assert all(c.ok and c.index_diffs == 0 for c in cases)
    from fastdrive_ros.runtime.ort_backend import OrtBackend

    with OrtBackend(onnx_path=result.path) as ort:
        index = ort.run(parity_inputs(parts.input_shape)["random"]).kept_index.numpy()
    counts = np.bincount(index // parts.tokens_per_camera, minlength=3)
    assert tuple(counts) == plan.keep_per_camera


def test_none_selector_exports_every_token_in_order(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    parts = support.make_parts(cameras=2)
    result = _export(parts, tmp_path, selector="none")
    assert result.metadata.plan.mode == "all"
    assert not [f for f in result.findings if f.code == "topk"]  # no TopK at all
    from fastdrive_ros.runtime.ort_backend import OrtBackend

    with OrtBackend(onnx_path=result.path) as ort:
        output = ort.run(parity_inputs(parts.input_shape)["random"])
    assert output.kept_index.tolist() == list(range(2 * parts.tokens_per_camera))
    assert output.scores is None
    assert all(c.ok for c in _parity(parts, result))


def test_fp16_export_keeps_float32_io_and_stays_close(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    parts = support.make_parts(cameras=2)
    result = _export(parts, tmp_path, precision="fp16")
    model = onnx.load(str(result.path))
    io_types = {v.type.tensor_type.elem_type for v in (*model.graph.input, model.graph.output[0])}
    assert io_types == {onnx.TensorProto.FLOAT}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert result.metadata.precision == "fp16" and result.path.name == "g.onnx"
    cases = _parity(parts, result, precision="fp16")
    assert all(c.ok for c in cases), [c.note for c in cases]
    # the shared fp32 model was not converted in place
    assert next(parts.encoder.parameters()).dtype == torch.float32
