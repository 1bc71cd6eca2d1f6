"""`fastdrive bench`: efficiency at real or compact scale with random weights.

Token counts and analytic FLOPs come from the config alone (any machine). Timings build the
project's VisionEncoder and ReconPruner and transformers' Qwen2.5-VL language model (the planner's
building block) with random weights and time, each as the median of repeats after warm-up:
the encoder on [C, 3, H, W] pixels, ReconPruner's selection at each budget, the LLM prefill
(+ LM head on the last position) at each kept count plus the prompt's text tokens, and per-token
greedy decoding with a KV cache after that prefill. CUDA timings use CUDA events. `--layers N`
builds N vision blocks and N LLM layers (for CPUs that cannot hold or run the full model); the
output says so and shows the full-depth FLOPs beside the reduced-depth timings.
"""

from __future__ import annotations

import copy
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.eval.flops import (
    TFLOP,
    TextShape,
    VisionShape,
    llm_decode_flops_per_token,
    llm_prefill_flops,
    reconpruner_flops,
    vision_flops,
    visual_token_count,
)
from fastdrive_ros.nn.selection import keep_count

BenchConfig = Literal["compact", "3b"]
REAL_IMAGE_SIZE = (1596, 1596)  # the paper's single 1596 x 1596 image: 57 x 57 = 3249 tokens
# Qwen2's pre-tokenizer splits digits one by one; special tokens (<|im_start|>, <plan>) are one
# token; words (with their leading space) and punctuation are ~1 token each.
_TOKEN_ESTIMATE = re.compile(r"<\|[a-z_]+\|>|<plan>|\d|[A-Za-z]+|[^\sA-Za-z\d]")


@dataclass(frozen=True)
class BenchSetup:
    """What to build and measure."""

    name: str
    qwen: Any  # Qwen2_5_VLConfig (full depth)
    image_size: tuple[int, int]
    cameras: int
    text_tokens: int
    prompt_style: str


def estimate_text_tokens(text: str) -> int:
    """Rough Qwen2 token count of a text (digits single, words and symbols one each)."""
    return len(_TOKEN_ESTIMATE.findall(text))


def _prompt_tokens(style: str, cameras: int) -> int:
    """Text tokens of the project's prompt for a typical ego state (moving, slight turn)."""
    from fastdrive_ros.nn.prompt import build_prompt

    history = np.stack([np.linspace(-24.0, 0.0, 7), np.linspace(-0.6, 0.0, 7)], axis=1)
    ego = EgoState(history, speed=8.0, acceleration=-0.4, yaw_rate=0.05, steering=0.02)
    prompt = build_prompt(ego, num_cameras=cameras, style=style)
    return sum(estimate_text_tokens(t) for t in prompt.texts)


def bench_setup(name: BenchConfig, *, text_tokens: int | None = None) -> BenchSetup:
    """The model to measure, by name.

    "3b": Qwen2.5-VL-3B shapes on one 1596x1596 image with Impromptu-VLA's prompt; "compact":
    the embedded default's shapes, cameras and prompt.
    """
    from fastdrive_ros.nn import configs

    if name == "3b":
        qwen, size, cameras, style = configs.qwen25_vl_3b_config(), REAL_IMAGE_SIZE, 1, "impromptu"
    elif name == "compact":
        compact = configs.compact_config()
        qwen = compact.qwen_config()
        size, cameras = tuple(compact.image_size), len(compact.camera_names)
        style = compact.prompt_style
    else:
        raise ValueError(f"config must be 'compact' or '3b', got {name!r}")
    tokens = _prompt_tokens(style, cameras) if text_tokens is None else int(text_tokens)
    if tokens < 1:
        raise ValueError(f"text tokens must be >= 1, got {tokens}")
    return BenchSetup(name, qwen, size, cameras, tokens, style)


def reduced(qwen: Any, layers: int | None) -> Any:
    """A copy with `layers` vision blocks and LLM layers (full attention in the last block)."""
    if layers is None:
        return qwen
    vision, text = qwen.vision_config, qwen.text_config
    deepest = min(vision.depth, text.num_hidden_layers)
    if not 1 <= layers <= deepest:  # more than the model has would time a model that is not it
        raise ValueError(
            f"--layers must be in 1..{deepest} (this config has {vision.depth} vision blocks and "
            f"{text.num_hidden_layers} LLM layers), got {layers}"
        )
    qwen = copy.deepcopy(qwen)
    vision, text = qwen.vision_config, qwen.text_config
    full = [i for i in vision.fullatt_block_indexes if i < layers] or [layers - 1]
    vision.depth, vision.fullatt_block_indexes = layers, full
    text.num_hidden_layers = layers
    if getattr(text, "layer_types", None):
        text.layer_types = list(text.layer_types)[:layers]
    return qwen


def analytic(setup: BenchSetup, ratios: Sequence[float], qwen: Any | None = None) -> dict:
    """Token counts and TFLOPs (full depth unless `qwen` says otherwise) at each ratio."""
    from fastdrive_ros.nn.recon_pruner import ReconPrunerConfig

    qwen = setup.qwen if qwen is None else qwen
    vision, text = (
        VisionShape.from_config(qwen.vision_config),
        TextShape.from_config(qwen.text_config),
    )
    n = visual_token_count(
        setup.image_size, cameras=setup.cameras, token_pixels=vision.token_pixels
    )
    per_camera = [n // setup.cameras] * setup.cameras
    pruner = ReconPrunerConfig.for_width(vision.out_hidden_size)
    rows = []
    for ratio in ratios:
        k = keep_count(n, ratio)
        rows.append(
            {
                "prune_ratio": ratio,
                "kept_tokens": k,
                "prefill_tflops": llm_prefill_flops(text, k + setup.text_tokens)["total"] / TFLOP,
                "decode_gflops_per_token": llm_decode_flops_per_token(text, k + setup.text_tokens)
                / 1e9,
            }
        )
    return {
        "total_tokens": n,
        "text_tokens": setup.text_tokens,
        "encoder_tflops": vision_flops(vision, setup.image_size, cameras=setup.cameras)["total"]
        / TFLOP,
        "pruner_tflops": reconpruner_flops(
            hidden_size=pruner.hidden_size,
            num_heads=pruner.num_attention_heads,
            num_kv_heads=pruner.num_key_value_heads,
            intermediate_size=pruner.intermediate_size,
            tokens_per_camera=per_camera,
        )
        / TFLOP,
        "ratios": rows,
    }


class Timer:
    """Median wall time of a callable: CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, *, device: torch.device, repeats: int, warmup: int) -> None:
        if repeats < 1 or warmup < 0:
            raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
        self.device, self.repeats, self.warmup = device, repeats, warmup

    def __call__(self, fn: Callable[[], Any]) -> float:
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            times.append(self.once(fn))
        return statistics.median(times)

    def once(self, fn: Callable[[], Any]) -> float:
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(self.device)
            return float(start.elapsed_time(end))
        begin = time.perf_counter()
        fn()
        return 1000.0 * (time.perf_counter() - begin)
