"""Analytic FLOPs equal torch's own matmul count on tiny Qwen2.5-VL towers; 3B figures as FACTS."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel,
    Qwen2_5_VLTextModel,
)

from fastdrive_ros.eval.flops import (
    TFLOP,
    TextShape,
    VisionShape,
    llm_decode_flops_per_token,
    llm_prefill_flops,
    merged_grid,
    vision_flops,
    visual_token_count,
)
from fastdrive_ros.nn.selection import keep_count

# Qwen2.5-VL-3B shapes (config.json of Qwen/Qwen2.5-VL-3B-Instruct)
VISION_3B = VisionShape(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048
)
TEXT_3B = TextShape(
    num_hidden_layers=36,
    hidden_size=2048,
    intermediate_size=11008,
    num_attention_heads=16,
    num_key_value_heads=2,
    vocab_size=151936,
    head_dim=128,
)


@pytest.mark.parametrize("size", [(140, 252), (112, 224)])  # partial and whole windows
def test_vision_flops_match_torch_counter(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(
        depth=3,
        hidden_size=64,
        intermediate_size=96,
        num_heads=2,
        out_hidden_size=48,
        fullatt_block_indexes=[1],
    )
    config._attn_implementation = "eager"  # the counter does not see CPU SDPA kernels
    tower = Qwen2_5_VisionTransformerPretrainedModel(config).eval()
    h, w = size
    grid = torch.tensor([[1, h // 14, w // 14]] * 2)
    patches = torch.randn(int(grid.prod(1).sum()), 3 * 2 * 14 * 14)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        tower(patches, grid_thw=grid)
    analytic = vision_flops(VisionShape.from_config(config), size, cameras=2)
    assert analytic["total"] == counter.get_total_flops()


def test_llm_prefill_flops_match_torch_counter() -> None:
    config = Qwen2_5_VLTextConfig(
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=100,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 2, 2]},
        bos_token_id=None,
        eos_token_id=None,
    )
    config._attn_implementation = "eager"
    model = Qwen2_5_VLTextModel(config).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs_embeds=torch.randn(1, 37, 64))
    shape = TextShape.from_config(config)
    dense = llm_prefill_flops(shape, 37, attention="full", lm_head_positions=0)
    assert dense["total"] == counter.get_total_flops()
    causal = llm_prefill_flops(shape, 37, lm_head_positions=0)
    assert causal["linear"] == dense["linear"] and causal["attention"] < dense["attention"]


def test_real_3b_token_counts_and_flops() -> None:
    size = (1596, 1596)
    assert merged_grid(size) == (57, 57)
    n = visual_token_count(size)
    assert n == 3249
    assert [keep_count(n, p) for p in (0.25, 0.5, 0.75)] == [2436, 1624, 812]
    text = 120
    full = llm_prefill_flops(TEXT_3B, n + text)["total"] / TFLOP
    pruned = llm_prefill_flops(TEXT_3B, 812 + text)["total"] / TFLOP
    assert 19 < full < 22 and 4.5 < pruned < 6  # FACTS.md: ~20 and ~5 TFLOP
    six = vision_flops(VISION_3B, (476, 840), cameras=6)
    assert visual_token_count((476, 840), cameras=6) == 3060
    assert 15 < six["total"] / TFLOP < 17.5  # FACTS.md: ~16 TFLOP
    # decoding one token costs ~2 x parameters (3B LLM ~ 3.1 B matmul weights with the LM head)
    assert 5.5e9 < llm_decode_flops_per_token(TEXT_3B, 1000) < 7.5e9


def test_fastv_style_per_layer_lengths() -> None:
    lengths = [3249] * 2 + [812] * 34
    mixed = llm_prefill_flops(TEXT_3B, lengths)["total"]
    assert (
        llm_prefill_flops(TEXT_3B, 812)["total"]
        < mixed
        < llm_prefill_flops(TEXT_3B, 3249)["total"]
    )
    with pytest.raises(ValueError, match="36 positive"):
        llm_prefill_flops(TEXT_3B, [10, 10])


def test_bad_image_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="multiples of 28"):
        merged_grid((900, 1600))
    with pytest.raises(ValueError, match="lacks"):
        VisionShape.from_config({"depth": 2})
