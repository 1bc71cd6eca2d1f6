"""ReconPruner: shape, bidirectional attention, top-K in original order, budgets, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from fastdrive_ros.nn.recon_pruner import (
    ReconPruner,
    ReconPrunerConfig,
    topk_original_order,
    topk_per_camera,
)
from fastdrive_ros.nn.registry import make_selector
from fastdrive_ros.nn.selection import (
    EncoderStageSelector,
    VisualTokens,
    keep_count,
    per_camera_keep,
)

torch.set_num_threads(2)
WIDTH = 64


def visual_tokens(counts: list[int], width: int = WIDTH, seed: int = 0) -> VisualTokens:
    """Cameras with `counts` merged tokens each (grid 2 x 2n patches)."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.tensor([[1, 2, 2 * c] for c in counts])
    return VisualTokens(tokens=torch.randn(sum(counts), width, generator=gen), grid_thw=grid)


@pytest.fixture(scope="module")
def pruner() -> ReconPruner:
    torch.manual_seed(0)
    return ReconPruner(config=ReconPrunerConfig.for_width(WIDTH)).eval()


def test_real_scale_parameter_count() -> None:
    config = ReconPrunerConfig.for_width(2048)
    assert (config.num_attention_heads, config.num_key_value_heads) == (16, 2)
    assert config.intermediate_size == 11008  # a Qwen2.5-3B decoder layer
    with torch.device("meta"):
        pruner = ReconPruner(config=config)
    count = sum(p.numel() for p in pruner.parameters())
    assert 0.076e9 < count < 0.078e9, count  # the paper's ~0.077B


def test_config_validation_and_dict_round_trip() -> None:
    config = ReconPrunerConfig.for_width(256)
    assert ReconPrunerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="divisible"):
        ReconPrunerConfig(
            hidden_size=100, num_attention_heads=3, num_key_value_heads=1, intermediate_size=8
        )
    with pytest.raises(ValueError, match="budget"):
        ReconPrunerConfig(
            hidden_size=64,
            num_attention_heads=1,
            num_key_value_heads=1,
            intermediate_size=8,
            budget="camera",  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="unknown"):
        ReconPrunerConfig.from_dict({**config.to_dict(), "depth": 2})


def test_forward_scores_every_token(pruner: ReconPruner) -> None:
    tokens = torch.randn(3, 11, WIDTH)
    scores = pruner(tokens)
    assert scores.shape == (3, 11)
    with pytest.raises(ValueError, match=r"\[B, n, 64\]"):
        pruner(torch.randn(3, 11, 32))


def test_attention_is_bidirectional(pruner: ReconPruner) -> None:
    tokens = torch.randn(1, 9, WIDTH)
    changed = tokens.clone()
    changed[0, -1] += 1.0
    with torch.no_grad():
        before, after = pruner(tokens), pruner(changed)
    # the first token (and the query before it) sees the last one: causal attention would not
    assert abs(float(before[0, 0] - after[0, 0])) > 1e-6


def test_scores_are_per_camera_and_batched(pruner: ReconPruner) -> None:
    visual = visual_tokens([6, 6, 4])
    with torch.no_grad():
        scores = pruner.scores(visual)
        cam2 = pruner(visual.tokens[12:16].unsqueeze(0))[0]
        cam0 = pruner(visual.tokens[:6].unsqueeze(0))[0]
    assert scores.shape == (16,)
    torch.testing.assert_close(scores[12:], cam2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores[:6], cam0, atol=1e-5, rtol=1e-5)


def test_topk_original_order() -> None:
    scores = torch.tensor([0.1, 5.0, -2.0, 3.0, 4.0, 0.0])
    assert topk_original_order(scores, 3).tolist() == [1, 3, 4]
    assert topk_original_order(scores, 6).tolist() == list(range(6))
    with pytest.raises(ValueError, match="keep"):
        topk_original_order(scores, 0)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75])
def test_select_keeps_k_best_at_original_positions(pruner: ReconPruner, ratio: float) -> None:
    visual = visual_tokens([20, 20, 20])
    keep = keep_count(60, ratio)
    selection = pruner.select(visual, keep)
    kept = selection.kept_index
    assert kept.numel() == keep and kept.dtype == torch.long
    assert bool((kept[1:] > kept[:-1]).all())  # original order
    scores = selection.scores
    best = set(torch.argsort(scores, descending=True)[:keep].tolist())
    assert set(kept.tolist()) == best  # exactly the top-K, identified by original index
    assert isinstance(pruner, EncoderStageSelector)


def test_per_camera_budgets(pruner: ReconPruner) -> None:
    visual = visual_tokens([10, 6, 8])
    budgets = per_camera_keep(visual.tokens_per_camera, 0.5)
    selection = pruner.select(visual, budgets)
    kept = selection.kept_index
    bounds = [0, 10, 16, 24]
    for c, budget in enumerate(budgets):
        inside = kept[(kept >= bounds[c]) & (kept < bounds[c + 1])]
        assert inside.numel() == budget
        cam_scores = selection.scores[bounds[c] : bounds[c + 1]]
        best = torch.argsort(cam_scores, descending=True)[:budget] + bounds[c]
        assert set(inside.tolist()) == set(best.tolist())
    zero = pruner.select(visual, [0, 6, 0]).kept_index
    assert zero.tolist() == list(range(10, 16))
    with pytest.raises(ValueError, match="budget"):
        pruner.select(visual, [11, 0, 0])
    with pytest.raises(ValueError, match="3 cameras"):
        pruner.select(visual, [1, 1])


def test_per_camera_budget_config_splits_an_int_keep() -> None:
    config = ReconPrunerConfig.for_width(WIDTH)
    torch.manual_seed(0)
    pruner = ReconPruner(config=ReconPrunerConfig(**{**config.to_dict(), "budget": "per_camera"}))
    visual = visual_tokens([10, 30])
    kept = pruner.select(visual, 8).kept_index
    assert int((kept < 10).sum()) == 2 and int((kept >= 10).sum()) == 6
    assert topk_per_camera(pruner.scores(visual).detach(), [10, 30], [2, 6]).tolist() == (
        kept.tolist()
    )


def test_select_rejects_bad_keep(pruner: ReconPruner) -> None:
    visual = visual_tokens([4, 4])
    for bad in (0, 9):
        with pytest.raises(ValueError, match="keep must be in 1..8"):
            pruner.select(visual, bad)
    with pytest.raises(ValueError, match="width 64"):
        pruner.select(visual_tokens([4], width=32), 2)


def test_save_load_round_trip(tmp_path, pruner: ReconPruner) -> None:
    pruner.save(tmp_path)
    assert (tmp_path / "reconpruner.safetensors").is_file()
    meta = json.loads((tmp_path / "reconpruner.json").read_text())
    assert meta["config"]["hidden_size"] == WIDTH
    loaded = ReconPruner.load(tmp_path, expected_width=WIDTH)
    assert loaded.config == pruner.config
    visual = visual_tokens([7, 7])
    with torch.no_grad():
        torch.testing.assert_close(loaded.scores(visual), pruner.scores(visual))
    assert torch.equal(loaded.select(visual, 5).kept_index, pruner.select(visual, 5).kept_index)
    via_registry = make_selector("reconpruner", folder=tmp_path, expected_width=WIDTH)
    assert isinstance(via_registry, ReconPruner)


def test_load_names_a_width_mismatch(tmp_path, pruner: ReconPruner) -> None:
    pruner.save(tmp_path)
    with pytest.raises(ValueError) as err:
        ReconPruner.load(tmp_path, expected_width=2048)
    message = str(err.value)
    assert "trained for encoder width 64" in message and "outputs 2048" in message
    assert "retrain or pick the matching pruner" in message


def test_load_errors_on_missing_or_foreign_files(tmp_path, pruner: ReconPruner) -> None:
    with pytest.raises(FileNotFoundError, match="reconpruner.json"):
        ReconPruner.load(tmp_path)
    pruner.save(tmp_path)
    (tmp_path / "reconpruner.json").write_text(json.dumps({"format": "other", "config": {}}))
    with pytest.raises(ValueError, match="not a ReconPruner config"):
        ReconPruner.load(tmp_path)


def test_scorer_exports_with_topk(tmp_path, pruner: ReconPruner) -> None:
    """The pruner + top-K in original order trace into ONNX (as the runtime graph uses them)."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pruner = pruner

        def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scores = self.pruner(tokens).reshape(-1)
            return topk_original_order(scores, 10), scores

    path = tmp_path / "pruner.onnx"
    tokens = torch.randn(2, 12, WIDTH)
    torch.onnx.export(Graph().eval(), (tokens,), str(path), dynamo=True, opset_version=20)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    index, scores = session.run(None, {session.get_inputs()[0].name: tokens.numpy()})
    with torch.no_grad():
        ref_scores = pruner(tokens).reshape(-1)
    torch.testing.assert_close(torch.from_numpy(scores), ref_scores, atol=1e-5, rtol=1e-4)
    assert index.tolist() == topk_original_order(ref_scores, 10).tolist()
