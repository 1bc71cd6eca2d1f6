"""FastV and SparseVLM inside the planner's prefill: exactly K tokens, from the LLM's attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState, PlanFailure, PlanOk
from fastdrive_ros.nn.baselines.fastv import FastV
from fastdrive_ros.nn.baselines.sparsevlm import SparseVLM
from fastdrive_ros.nn.configs import qwen_config_from, small_qwen_config
from fastdrive_ros.nn.llm_stage import LayerCache, PrefillState, text_model_class
from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.nn.registry import make_selector, selector_stage
from fastdrive_ros.nn.tokenizer import SPECIAL_TOKENS, train_compact_tokenizer

torch.set_num_threads(2)
CAMERAS = 2
GRID = torch.tensor([[1, 6, 8]] * CAMERAS)  # 3 x 4 merged tokens per camera, N = 24
N = 24


@pytest.fixture(scope="module")
def planner() -> VLAPlanner:
    qwen = qwen_config_from(
        small_qwen_config(
            vocab_size=512,
            width=64,
            layers=6,
            heads=4,
            kv_heads=2,
            intermediate=128,
            vision_width=32,
            vision_depth=1,
            vision_heads=2,
            full_attention=(0,),
            special_ids={name: i for i, name in enumerate(SPECIAL_TOKENS)},
        )
    )
    torch.manual_seed(0)
    return VLAPlanner(
        qwen_config=qwen,
        tokenizer=train_compact_tokenizer(),
        prompt_style="compact",
        regression_head=True,
    ).eval()


def _ego() -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([8.0 * t, 0 * t], axis=1),
        speed=8.0,
        acceleration=0.0,
        yaw_rate=0.0,
        steering=0.0,
    )


def _tokens() -> torch.Tensor:
    return torch.randn(N, 64, generator=torch.Generator().manual_seed(3)) * 3


def _plan(planner, selector, keep, head="regression", **kw):
    return planner.plan_detailed(
        kept_tokens=_tokens(),
        kept_index=torch.arange(N),
        grid_thw=GRID,
        ego=_ego(),
        selector=selector,
        keep=keep,
        head=head,
        **kw,
    )


@pytest.mark.parametrize("selector", [FastV(layer=2), SparseVLM()], ids=["fastv", "sparsevlm"])
def test_keep_all_is_the_unpruned_planner(planner, selector) -> None:
    plain = _plan(planner, None, None).result
    full = _plan(planner, selector, N)
    assert full.selection.kept_index.tolist() == list(range(N))
    np.testing.assert_array_equal(full.result.waypoints, plain.waypoints)


@pytest.mark.parametrize("keep", [1, 6, 12, 18])
@pytest.mark.parametrize("name", ["fastv", "sparsevlm"])
def test_keeps_exactly_k_and_uses_llm_attention(planner, name, keep, monkeypatch) -> None:
    selector = make_selector(name)
    assert selector.stage == "llm" == selector_stage(name)
    assert "eager" in type(selector).__doc__  # the docstring says what it needs
    calls: list[int] = []
    original = planner.text_attention

    def spy(index, state):
        calls.append(index)
        return original(index, state)

    monkeypatch.setattr(planner, "text_attention", spy)
    out = _plan(planner, selector, keep)
    assert isinstance(out.result, PlanOk)
    assert out.selection.kept_index.numel() == keep
    assert len(set(out.selection.kept_index.tolist())) == keep
    points = selector.prune_points(planner.num_layers, N, keep)
    assert calls == [j - 1 for j, _ in points] and calls  # attention of the layer before j
    text = out.tokens_per_layer[0] - N
    assert out.tokens_per_layer[-1] == text + keep  # the last layers see exactly K
    assert list(out.tokens_per_layer) == sorted(out.tokens_per_layer, reverse=True)


def test_fastv_ranks_by_transformers_eager_attention(planner) -> None:
    """FastV's kept set = top-K of the attention transformers' eager layer k returns."""
    keep = 8
    fastv = FastV(layer=2)
    out = _plan(planner, fastv, keep)
    parts = planner._assemble(_ego(), _tokens(), torch.arange(N), GRID)
    config = planner.text_config.__class__.from_dict(planner.text_config.to_dict())
    config._attn_implementation = "eager"
    reference = text_model_class()(config).eval()
    reference.load_state_dict(planner.model.state_dict())
    with torch.no_grad():
        result = reference(
            inputs_embeds=parts.embeds[None],
            position_ids=parts.positions[:, None],
            output_attentions=True,
        )
    probs = result.attentions[1][0].mean(dim=0)[-1]  # layer 2 (1-based), last prompt token
    visual = torch.nonzero(parts.visual_index >= 0).flatten()
    torch.testing.assert_close(fastv.last_scores, probs[visual], atol=1e-6, rtol=1e-5)
    expected = torch.sort(torch.topk(probs[visual], keep).indices).values
    assert out.selection.kept_index.tolist() == expected.tolist()


def test_fastv_text_path_keeps_full_caches_in_early_layers(planner) -> None:
    keep = 5
    parts = planner._assemble(_ego(), _tokens(), torch.arange(N), GRID)
    state = PrefillState(
        parts.embeds[None], parts.positions[:, None], parts.seq_index, parts.visual_index
    )
    cache = LayerCache()
    with torch.no_grad():
        planner._prefill(state, cache=cache, selector=FastV(layer=2), keep=keep)
    length = parts.embeds.shape[0]
    assert [cache.get_seq_length(i) for i in range(6)] == [length] * 2 + [length - N + keep] * 4
    out = _plan(planner, FastV(layer=2), keep, head="text", max_new_tokens=6)
    assert isinstance(out.result, (PlanOk, PlanFailure))
    assert out.result.timings_ms["decode"] >= 0


def test_sparsevlm_schedule_recycling_and_budgets(planner, monkeypatch) -> None:
    sparse = SparseVLM()
    assert sparse.schedule(32) == (2, 6, 15)  # the reference's pruning locations
    assert sparse.schedule(36) == (2, 7, 17)
    assert sparse.schedule(6) == (0, 1, 3)
    # layer l's own attention rates, layers from l + 1 on see fewer (the reference's order)
    assert [j for j, _ in sparse.prune_points(32, 576, 64)] == [3, 7, 16]
    points = sparse.prune_points(6, N, 6)
    assert [j for j, _ in points] == [1, 2, 4] and [b for _, b in points] == [15, 10, 6]
    calls: list[int] = []
    original = planner.text_attention

    def spy(index, state):
        calls.append(index)
        return original(index, state)

    monkeypatch.setattr(planner, "text_attention", spy)
    out = _plan(planner, sparse, 6)
    assert calls == [0, 1, 3]  # the attention of the layer being pruned
    assert sparse.recycled_total == 3  # one DPC-kNN aggregate per step, within K
    assert out.selection.kept_index.numel() == 6
    plain = _plan(planner, SparseVLM(recycle=False), 6)
    assert plain.selection.kept_index.numel() == 6
    with pytest.raises(ValueError, match="below 5"):
        SparseVLM(layers=(2, 5)).schedule(6)


def test_sparsevlm_recycles_30_percent_into_a_tenth_as_many_clusters() -> None:
    sparse = SparseVLM()
    # the paper's 75 % setting: 2437 dropped, top int(0.3 * 2437) + 1 = 732 recycled,
    # int(732 / 10) + 1 = 74 cluster centres, which take 74 of the 812 slots
    assert sparse.cluster_count(3249, 812) == 74
    assert sparse.cluster_count(24, 15) == 1  # 9 dropped -> pool 3 -> 1 cluster
    assert sparse.cluster_count(24, 1) == 0  # at least one kept token stays
    assert sparse.cluster_count(10, 10) == 0


def test_dpc_knn_finds_separated_groups() -> None:
    from fastdrive_ros.nn.baselines.sparsevlm import dpc_knn

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 8, generator=gen) * 0.01
    b = torch.randn(4, 8, generator=gen) * 0.01 + 5.0
    x = torch.cat([a[:3], b[:2], a[3:], b[2:]])  # interleaved, as scores would order them
    centres, assign = dpc_knn(x, 2)
    group = torch.tensor([0, 0, 0, 1, 1, 0, 0, 0, 1, 1])
    assert sorted(group[centres].tolist()) == [0, 1]
    for g in range(2):  # each cluster is exactly one group, its centre inside it
        members = group[assign == g]
        assert members.numel() and bool((members == group[centres[g]]).all())
    assert assign[centres].tolist() == [0, 1]


def _state(hidden: torch.Tensor, visual_index: list[int]) -> PrefillState:
    count = hidden.shape[0]
    return PrefillState(
        hidden=hidden[None],
        positions=torch.arange(count).repeat(3, 1)[:, None],
        seq_index=torch.arange(count),
        visual_index=torch.tensor(visual_index),
    )


def test_sparsevlm_raters_are_the_text_tokens_relevant_to_the_image() -> None:
    from fastdrive_ros.nn.baselines.sparsevlm import rater_rows

    e = torch.eye(4)
    # rows: text before the image, 3 visual tokens, then text: relevant, irrelevant, relevant
    hidden = torch.stack([e[0] * 5, e[1] * 5, e[1] * 5, e[1] * 5, e[1] * 5, -e[1], e[1] * 5])
    state = _state(hidden, [-1, 0, 1, 2, -1, -1, -1])
    assert rater_rows(state).tolist() == [4, 6]


def test_sparsevlm_scores_with_raters_and_recycles_a_cluster_mean() -> None:
    e = torch.eye(4)
    # rows 0..3 visual (0 and 1 alike, 2 and 3 alike), rows 4, 5 text
    hidden = torch.stack([e[0], e[0] * 1.1, e[2], e[2] * 1.2, e[1], e[3]])
    state = _state(hidden, [0, 1, 2, 3, -1, -1])
    sparse = SparseVLM(recycle=False)
    sparse.rater_seq = torch.tensor([5])  # only the second text row rates
    attention = torch.zeros(1, 2, 6)
    attention[0, 0] = torch.tensor([0.0, 0.0, 0.9, 0.1, 0.0, 0.0])  # non-rater: likes token 2
    attention[0, 1] = torch.tensor([0.1, 0.6, 0.1, 0.2, 0.0, 0.0])  # rater: likes token 1
    out = sparse.prune(state, attention, 1)
    assert out.visual_index[out.visual_index >= 0].tolist() == [1]
    recycling = SparseVLM(recycle_share=1.0)
    recycling.rater_seq = torch.tensor([5])
    out = recycling.prune(state, attention, 2)  # 1 kept (token 1) + 1 aggregate of 3 dropped
    assert recycling.recycled_total == 1
    visual = out.visual_index >= 0
    assert out.visual_index[visual].numel() == 2 and 1 in out.visual_index[visual].tolist()
    leader = [i for i in out.visual_index[visual].tolist() if i != 1][0]
    row = int(torch.nonzero(out.visual_index == leader)[0])
    torch.testing.assert_close(out.hidden[0, row], hidden[[0, 2, 3]].mean(dim=0))
    assert out.positions[0, 0, row] == leader  # the centre's own (dropped) position
    with pytest.raises(RuntimeError, match="begin"):
        SparseVLM().prune(state, attention, 1)


def test_fastv_layer_must_fit(planner) -> None:
    with pytest.raises(ValueError, match="1..5"):
        _plan(planner, FastV(layer=6), 4)
    with pytest.raises(ValueError, match="LLM-stage"):
        _plan(planner, make_selector("random"), 4)
