"""Encoder-stage baselines (DivPrune, VisPruner, random, none) and the selector registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastdrive_ros.nn.baselines import DivPrune, KeepAll, RandomSelector, VisPruner
from fastdrive_ros.nn.baselines.divprune import divprune_order
from fastdrive_ros.nn.baselines.vispruner import vispruner_choice
from fastdrive_ros.nn.registry import (
    SELECTOR_NAMES,
    make_selector,
    selector_class,
    selector_stage,
)
from fastdrive_ros.nn.selection import EncoderStageSelector, VisualTokens, per_camera_keep

torch.set_num_threads(2)


def visual_tokens(
    counts: list[int], width: int = 16, seed: int = 0, attention: bool = True
) -> VisualTokens:
    gen = torch.Generator().manual_seed(seed)
    n = sum(counts)
    aux = {"attention_received": torch.rand(n, generator=gen)} if attention else {}
    return VisualTokens(
        tokens=torch.randn(n, width, generator=gen),
        grid_thw=torch.tensor([[1, 2, 2 * c] for c in counts]),
        aux=aux,
    )


ENCODER_SELECTORS = ["divprune", "vispruner", "prune2drive", "random"]


@pytest.mark.parametrize("name", ENCODER_SELECTORS)
@pytest.mark.parametrize("keep", [1, 7, 29, 30])
def test_keeps_exactly_k_in_original_order(name: str, keep: int) -> None:
    selector = make_selector(name)
    assert isinstance(selector, EncoderStageSelector)
    assert selector.name == name and selector.stage == "encoder"
    visual = visual_tokens([10, 12, 8])
    kept = selector.select(visual, keep).kept_index
    assert kept.numel() == keep and kept.dtype == torch.long
    assert bool((kept[1:] > kept[:-1]).all())
    assert 0 <= int(kept.min()) and int(kept.max()) < 30


@pytest.mark.parametrize("name", ENCODER_SELECTORS)
def test_per_camera_budgets_are_respected(name: str) -> None:
    visual = visual_tokens([10, 12, 8])
    budgets = per_camera_keep(visual.tokens_per_camera, 0.6)
    kept = make_selector(name).select(visual, budgets).kept_index
    bounds = [0, 10, 22, 30]
    counts = [int(((kept >= bounds[c]) & (kept < bounds[c + 1])).sum()) for c in range(3)]
    assert counts == budgets and sum(budgets) == 12
    kept = make_selector(name).select(visual, [0, 3, 0]).kept_index
    assert bool(((kept >= 10) & (kept < 22)).all()) and kept.numel() == 3


@pytest.mark.parametrize("name", ENCODER_SELECTORS + ["none"])
def test_bad_keep_is_rejected(name: str) -> None:
    visual = visual_tokens([5, 5])
    if name == "none":
        assert make_selector(name).select(visual, 3).kept_index.numel() == 10
        return
    with pytest.raises(ValueError, match="keep must be in 1..10"):
        make_selector(name).select(visual, 11)
    with pytest.raises(ValueError, match="budget"):
        make_selector(name).select(visual, [6, 0])


def _greedy_reference(tokens: torch.Tensor, keep: int) -> list[int]:
    """DivPrune's max-min greedy written out plainly."""
    unit = F.normalize(tokens.double(), dim=-1)
    dist = 1.0 - unit @ unit.T
    n = tokens.shape[0]
    nearest = [min(float(dist[i, j]) for j in range(n) if j != i) for i in range(n)]
    chosen = [max(range(n), key=lambda i: (nearest[i], -i))]
    while len(chosen) < keep:
        rest = [i for i in range(n) if i not in chosen]
        chosen.append(max(rest, key=lambda i: (min(float(dist[i, j]) for j in chosen), -i)))
    return chosen


def test_divprune_is_greedy_max_min_diversity() -> None:
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randn(25, 8, generator=gen)
    assert divprune_order(tokens, 9).tolist() == _greedy_reference(tokens, 9)


def test_divprune_prefers_distinct_tokens() -> None:
    base = torch.eye(4)  # 4 orthogonal directions, each repeated 3 times (with tiny noise)
    gen = torch.Generator().manual_seed(0)
    tokens = base.repeat_interleave(3, dim=0) + 1e-3 * torch.randn(12, 4, generator=gen)
    visual = VisualTokens(tokens=tokens, grid_thw=torch.tensor([[1, 2, 24]]))
    kept = DivPrune().select(visual, 4).kept_index
    assert sorted((kept // 3).tolist()) == [0, 1, 2, 3]  # one per direction
    needs_nothing_else = VisualTokens(tokens=tokens, grid_thw=torch.tensor([[1, 2, 24]]))
    assert DivPrune().select(needs_nothing_else, 12).kept_index.tolist() == list(range(12))


def test_vispruner_keeps_the_most_attended_then_diverse() -> None:
    visual = visual_tokens([40])
    attention = visual.aux["attention_received"]
    selection = VisPruner().select(visual, 10)
    top5 = set(torch.argsort(attention, descending=True)[:5].tolist())
    assert top5 <= set(selection.kept_index.tolist())  # half the budget: most attended
    assert torch.equal(selection.scores, attention)
    only_important = VisPruner(important_ratio=1.0).select(visual, 10).kept_index
    top10 = torch.argsort(attention, descending=True)[:10]
    assert only_important.tolist() == sorted(top10.tolist())


def test_vispruner_diverse_part_drops_duplicates() -> None:
    # attention picks token 0; the rest are 3 directions x 4 near-copies: diverse part = 3 distinct
    gen = torch.Generator().manual_seed(1)
    directions = torch.eye(6)[1:4]
    tokens = torch.cat([torch.eye(6)[:1], directions.repeat(4, 1)])
    tokens = tokens + 1e-3 * torch.randn(tokens.shape, generator=gen)
    attention = torch.zeros(13)
    attention[0] = 1.0
    chosen = vispruner_choice(tokens, attention, 4, important_ratio=0.25, step=2)
    assert chosen[0] == 0
    groups = {(int(i) - 1) % 3 for i in chosen[1:]}
    assert groups == {0, 1, 2}


def test_vispruner_needs_encoder_attention() -> None:
    visual = visual_tokens([6, 6], attention=False)
    with pytest.raises(ValueError, match="return_attention=True"):
        VisPruner().select(visual, 4)
    with pytest.raises(ValueError, match="important_ratio"):
        VisPruner(important_ratio=1.5)


def test_random_is_seeded_and_deterministic() -> None:
    visual = visual_tokens([20, 20])
    a, b = RandomSelector(seed=5), RandomSelector(seed=5)
    first = [a.select(visual, 10).kept_index for _ in range(3)]
    second = [b.select(visual, 10).kept_index for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    assert not torch.equal(first[0], first[1])  # the sequence advances frame to frame
    a.reset()
    assert torch.equal(a.select(visual, 10).kept_index, first[0])
    other = RandomSelector(seed=6).select(visual, 10).kept_index
    assert not torch.equal(other, first[0])


def test_keep_all_keeps_everything() -> None:
    visual = visual_tokens([4, 6])
    selector = KeepAll()
    assert selector.name == "none" and isinstance(selector, EncoderStageSelector)
    assert selector.select(visual, 3).kept_index.tolist() == list(range(10))


def test_registry_names_stages_and_errors() -> None:
    assert SELECTOR_NAMES == (
        "reconpruner",
        "fastv",
        "sparsevlm",
        "divprune",
        "vispruner",
        "prune2drive",
        "random",
        "none",
    )
    stages = {name: selector_stage(name) for name in SELECTOR_NAMES}
    assert stages == {
        "reconpruner": "encoder",
        "fastv": "llm",
        "sparsevlm": "llm",
        "divprune": "encoder",
        "vispruner": "encoder",
        "prune2drive": "encoder",
        "random": "encoder",
        "none": "encoder",
    }
    with pytest.raises(ValueError, match="unknown selector 'fastvv'"):
        selector_stage("fastvv")
    assert selector_class("divprune") is DivPrune
    assert make_selector("random", seed=3).seed == 3
    assert make_selector("vispruner", important_ratio=0.25).important_ratio == 0.25
    with pytest.raises(ValueError, match="exactly one of pruner= .* or folder="):
        make_selector("reconpruner")


def test_registry_wraps_a_reconpruner_instance() -> None:
    from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig

    pruner = ReconPruner(config=ReconPrunerConfig.for_width(16))
    assert make_selector("reconpruner", pruner=pruner) is pruner
    with pytest.raises(ValueError, match="trained for encoder width 16"):
        make_selector("reconpruner", pruner=pruner, expected_width=32)


def test_vispruner_on_real_encoder_attention() -> None:
    """End to end: the vision encoder's attention drives VisPruner on several cameras."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

    from fastdrive_ros.nn.vision import VisionEncoder

    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=48,
        fullatt_block_indexes=[1],
    )
    encoder = VisionEncoder(config=config).eval()
    with torch.no_grad():
        visual = encoder(torch.randn(3, 3, 56, 84), return_attention=True)
    for name in ENCODER_SELECTORS:
        kept = make_selector(name).select(visual, 9).kept_index
        assert kept.numel() == 9
