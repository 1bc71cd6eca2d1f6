"""The planner is transformers' unpruned Qwen2.5-VL at K = N; kept tokens keep their positions."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLForConditionalGeneration

from fastdrive_ros.core_types import EgoState, PlanFailure, PlanOk
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.forward_only import forward_only
from fastdrive_ros.nn.llm_stage import LayerCache, PrefillState
from fastdrive_ros.nn.mrope import ImageSegment, TextSegment, mrope_position_ids
from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.nn.prompt import build_prompt
from fastdrive_ros.nn.tokenizer import train_compact_tokenizer

torch.set_num_threads(2)
CAMERAS = 3
GRID = torch.tensor([[1, 4, 6]] * CAMERAS)  # 2 x 3 merged tokens per camera, N = 18


@pytest.fixture(scope="module")
def setup():
    config = tiny_config(cameras=CAMERAS)
    tokenizer = train_compact_tokenizer(vocab_size=512)
    qwen = config.qwen_config()
    torch.manual_seed(0)
    planner = VLAPlanner(
        qwen_config=qwen, tokenizer=tokenizer, prompt_style="compact", regression_head=True
    ).eval()
    return qwen, planner


def _ego(speed: float = 6.0, command: str = "straight") -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([speed * t, 0.01 * t**2], axis=1),
        speed=speed,
        acceleration=0.3,
        yaw_rate=0.01,
        steering=0.02,
        command=command,
    )


def _tokens(n: int = 18, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 64, generator=torch.Generator().manual_seed(seed))


def _reference_logits(qwen, planner: VLAPlanner, tokens: torch.Tensor, ego: EgoState):
    """Logits of transformers' Qwen2_5_VLForConditionalGeneration on the unpruned prompt."""
    ref = Qwen2_5_VLForConditionalGeneration(qwen).eval()
    text_model = getattr(ref.model, "language_model", ref.model)
    text_model.load_state_dict(planner.model.state_dict())
    ref.lm_head.weight = torch.nn.Parameter(planner.lm_head.weight.detach().clone())
    spec = build_prompt(ego, num_cameras=CAMERAS, style="compact")
    ids: list[int] = []
    n_cam = tokens.shape[0] // CAMERAS
    for i, text in enumerate(spec.texts):
        ids += planner.tokenizer.encode(text)
        if i < CAMERAS:
            ids += [qwen.image_token_id] * n_cam
    input_ids = torch.tensor([ids])
    is_image = input_ids == qwen.image_token_id
    embeds = ref.get_input_embeddings()(input_ids)
    embeds[is_image] = tokens
    kwargs = {"image_grid_thw": GRID}
    owner = ref.model if hasattr(ref.model, "get_rope_index") else ref  # 4.49-4.51: on ref
    if "mm_token_type_ids" in inspect.signature(owner.get_rope_index).parameters:
        kwargs["mm_token_type_ids"] = is_image.int()
    positions, _ = owner.get_rope_index(input_ids, **kwargs)
    with torch.no_grad():
        out = ref(inputs_embeds=embeds, position_ids=positions)
    return out.logits[0], is_image[0]


def _hidden(planner, tokens, index, ego, **kw) -> PrefillState:
    return planner.prefill_hidden(
        kept_tokens=tokens[index], kept_index=index, grid_thw=GRID, ego=ego, **kw
    )


def test_all_kept_equals_unpruned_transformers_model(setup) -> None:
    qwen, planner = setup
    tokens, ego = _tokens(), _ego()
    reference, _ = _reference_logits(qwen, planner, tokens, ego)
    state = _hidden(planner, tokens, torch.arange(18), ego)
    ours = planner.lm_head(state.hidden[0])
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, atol=2e-6, rtol=1e-5)
    # the waypoint head reads the same last hidden state, so plan() at K = N is exact too
    result = planner.plan(kept_tokens=tokens, kept_index=torch.arange(18), grid_thw=GRID, ego=ego)
    expected = planner.waypoint_head(state.hidden[0, -1:]).detach().numpy()[0]
    np.testing.assert_allclose(result.waypoints, forward_only(expected), atol=1e-6)


def test_prefill_runs_on_the_kept_tokens_only(setup) -> None:
    _, planner = setup
    tokens, ego = _tokens(), _ego()
    text = planner.text_token_count(ego, CAMERAS)
    for kept in (torch.arange(18), torch.tensor([0, 4, 5, 11, 17])):
        out = planner.plan_detailed(
            kept_tokens=tokens[kept], kept_index=kept, grid_thw=GRID, ego=ego
        )
        # every layer sees the K kept visual tokens plus the prompt, never the N = 18
        assert out.tokens_per_layer == (kept.numel() + text,) * planner.num_layers


def test_kept_positions_are_the_full_sequence_positions(setup) -> None:
    _, planner = setup
    ego, tokens = _ego(), _tokens()
    index = torch.tensor([0, 3, 4, 9, 10, 17])
    parts = planner._assemble(ego, tokens[index], index, GRID)
    spec = build_prompt(ego, num_cameras=CAMERAS, style="compact")
    lengths = [len(planner.tokenizer.encode(t)) for t in spec.texts]
    segments: list = []
    for i, n in enumerate(lengths):
        segments.append(TextSegment(n))
        if i < CAMERAS:
            segments.append(ImageSegment((1, 4, 6)))
    full = mrope_position_ids(segments)
    assert torch.equal(parts.positions, full[:, parts.seq_index])
    visual_rows = parts.visual_index >= 0
    assert parts.visual_index[visual_rows].tolist() == index.tolist()
    # the visual rows carry exactly the positions of those tokens in the unpruned prompt
    unpruned = planner._assemble(ego, tokens, torch.arange(18), GRID)
    rows = unpruned.visual_index >= 0
    assert torch.equal(parts.positions[:, visual_rows], unpruned.positions[:, rows][:, index])
    assert torch.equal(parts.embeds[visual_rows], tokens[index])
    assert parts.next_pos == int(full.max()) + 1


def test_pruned_equals_masked_full_model_and_contiguous_ids_do_not(setup) -> None:
    _, planner = setup
    ego, tokens = _ego(), _tokens()
    index = torch.tensor([1, 2, 5, 6, 7, 12, 13, 16])
    pruned = _hidden(planner, tokens, index, ego)
    # the full prompt, with pruned visual tokens masked out as attention keys
    full = planner._assemble(ego, tokens, torch.arange(18), GRID)
    keep = (full.visual_index < 0) | torch.isin(full.visual_index, index)
    length = keep.numel()
    allowed = torch.ones(length, length, dtype=torch.bool).tril() & keep[None, :]
    allowed |= torch.eye(length, dtype=torch.bool)
    mask = torch.zeros(1, 1, length, length).masked_fill(~allowed, torch.finfo(torch.float32).min)
    state = PrefillState(
        full.embeds[None], full.positions[:, None], full.seq_index, full.visual_index
    )
    with torch.no_grad():
        masked = planner._prefill(state, cache=None, mask=mask)
    torch.testing.assert_close(pruned.hidden[0], masked.hidden[0, keep], atol=2e-6, rtol=1e-5)
    # renumbering the kept tokens contiguously (the naive way) changes the output
    parts = planner._assemble(ego, tokens[index], index, GRID)
    contiguous = torch.arange(parts.seq_index.numel()).expand(3, 1, -1)
    naive = PrefillState(parts.embeds[None], contiguous, parts.seq_index, parts.visual_index)
    with torch.no_grad():
        wrong = planner._prefill(naive, cache=None)
    diff = (planner.lm_head(wrong.hidden) - planner.lm_head(pruned.hidden)).abs().max()
    assert diff > 1e-3


def test_regression_batch_matches_plan_and_trains(setup) -> None:
    _, planner = setup
    indices = [torch.arange(18), torch.tensor([0, 5, 6, 11, 12, 17]), torch.tensor([3, 4])]
    egos = [_ego(6.0), _ego(12.34, "left"), _ego(0.0, "right")]
    tokens = [_tokens(seed=s)[i] for s, i in zip((1, 2, 3), indices)]
    batch = planner.forward_regression(
        visual_tokens=tokens, kept_index=indices, grid_thw=GRID, egos=egos
    )
    assert batch.shape == (3, 6, 2)
    for b in range(3):
        single = planner.plan(
            kept_tokens=tokens[b], kept_index=indices[b], grid_thw=GRID, ego=egos[b]
        )
        projected = forward_only(batch[b].detach().numpy())  # what plan() returns
        np.testing.assert_allclose(projected, single.waypoints, atol=2e-5)
    loss = batch.abs().mean()
    loss.backward()
    assert planner.waypoint_head.mlp[0].weight.grad is not None
    assert planner.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    planner.zero_grad(set_to_none=True)


def test_text_path_on_random_weights_fails_typed(setup) -> None:
    _, planner = setup
    result = planner.plan(
        kept_tokens=_tokens(),
        kept_index=torch.arange(18),
        grid_thw=GRID,
        ego=_ego(),
        head="text",
        max_new_tokens=12,
    )
    assert isinstance(result, PlanFailure)  # garbage text, never an exception
    assert result.reason in ("unparseable", "no_answer", "wrong_count")
    assert result.timings_ms["prefill"] > 0 and "decode" in result.timings_ms


def test_text_path_decodes_a_forced_answer(setup, monkeypatch) -> None:
    """Force the LM head to spell a good answer; decoding, KV cache and parsing do the rest."""
    _, planner = setup
    answer = "<PLANNING>[2.5, 0.0], [5.1, 0.1], [7.6, 0.2], [10.2, 0.4], [12.7, 0.6], [15.3, 0.9]"
    answer += "</PLANNING>"
    target = planner.tokenizer.encode(answer) + [planner.tokenizer.eos_ids[0]]
    seen = []
    original = planner.lm_head.forward

    def forced(hidden: torch.Tensor) -> torch.Tensor:
        seen.append(hidden.shape)
        logits = original(hidden).clone()
        logits[..., target[min(len(seen) - 1, len(target) - 1)]] = 1e4
        return logits

    monkeypatch.setattr(planner.lm_head, "forward", forced)
    result = planner.plan(
        kept_tokens=_tokens(),
        kept_index=torch.arange(18),
        grid_thw=GRID,
        ego=_ego(),
        head="text",
        max_new_tokens=96,
    )
    assert isinstance(result, PlanOk), result
    assert result.waypoints[-1].tolist() == [15.3, 0.9]
    assert result.generated_tokens == len(target) - 1
    assert result.text == answer
    # bounded: the same answer cut at 10 tokens is a typed failure (no closing tag)
    seen.clear()
    short = planner.plan(
        kept_tokens=_tokens(),
        kept_index=torch.arange(18),
        grid_thw=GRID,
        ego=_ego(),
        head="text",
        max_new_tokens=10,
    )
    assert isinstance(short, PlanFailure) and short.reason == "unparseable"
    assert "cut off" in short.detail


def test_kv_cache_decoding_equals_recomputing(setup) -> None:
    """Greedy tokens with the cache equal argmax of a full recompute at the decode positions."""
    _, planner = setup
    ego, tokens = _ego(), _tokens()
    index = torch.tensor([0, 2, 4, 8, 9, 15])
    parts = planner._assemble(ego, tokens[index], index, GRID)
    state = PrefillState(
        parts.embeds[None], parts.positions[:, None], parts.seq_index, parts.visual_index
    )
    cache = LayerCache()
    with torch.no_grad():
        first = planner.lm_head(planner._prefill(state, cache=cache).hidden[0, -1])
        generated, finite = planner._greedy(first, cache, parts.next_pos, 5)
    assert finite and len(generated) >= 1
    ids = [int(first.argmax())] + generated[1:]
    embeds = torch.cat([parts.embeds, planner.model.embed_tokens(torch.tensor(ids[:-1]))])
    extra = torch.arange(parts.next_pos, parts.next_pos + len(ids) - 1).expand(3, -1)
    positions = torch.cat([parts.positions, extra], dim=1)[:, None]
    seq = torch.arange(embeds.shape[0])
    visual = torch.cat([parts.visual_index, torch.full((len(ids) - 1,), -1)])
    with torch.no_grad():
        full = planner._prefill(PrefillState(embeds[None], positions, seq, visual), cache=None)
        logits = planner.lm_head(full.hidden[0, parts.embeds.shape[0] - 1 :])
    assert logits.argmax(dim=-1).tolist() == ids


def test_non_finite_is_a_failure_not_an_exception(setup) -> None:
    _, planner = setup
    weight = planner.model.layers[0].mlp.down_proj.weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.fill_(float("nan"))
        for head in ("regression", "text"):
            result = planner.plan(
                kept_tokens=_tokens(),
                kept_index=torch.arange(18),
                grid_thw=GRID,
                ego=_ego(),
                head=head,
            )
            assert isinstance(result, PlanFailure) and result.reason == "non_finite"
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def test_bad_inputs_raise_clearly(setup) -> None:
    _, planner = setup
    tokens = _tokens()
    with pytest.raises(ValueError, match="ascending"):
        planner.plan(
            kept_tokens=tokens[:2], kept_index=torch.tensor([3, 1]), grid_thw=GRID, ego=_ego()
        )
    with pytest.raises(ValueError, match="outside"):
        planner.plan(
            kept_tokens=tokens[:2], kept_index=torch.tensor([3, 18]), grid_thw=GRID, ego=_ego()
        )
    with pytest.raises(ValueError, match=r"\[K, 64\]"):
        planner.plan(
            kept_tokens=tokens[:, :8], kept_index=torch.arange(18), grid_thw=GRID, ego=_ego()
        )
    with pytest.raises(ValueError, match="max_new_tokens"):
        planner.plan(
            kept_tokens=tokens,
            kept_index=torch.arange(18),
            grid_thw=GRID,
            ego=_ego(),
            max_new_tokens=0,
        )
