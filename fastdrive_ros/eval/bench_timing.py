"""Timed stages for `fastdrive bench` (random weights; see bench.py for what is measured)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from fastdrive_ros.eval.bench import BenchSetup, Timer
from fastdrive_ros.nn.llm_stage import cache_keyword
from fastdrive_ros.nn.selection import keep_count


def _text_model(qwen: Any, device: torch.device, dtype: torch.dtype):
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLTextModel

    text = copy.deepcopy(qwen.text_config)
    text._attn_implementation = "sdpa"
    model = Qwen2_5_VLTextModel(text).to(device=device, dtype=dtype).eval()
    head = torch.nn.Linear(text.hidden_size, text.vocab_size, bias=False)
    return model, head.to(device=device, dtype=dtype).eval(), text


def _positions(start: int, length: int, device: torch.device) -> torch.Tensor:
    """(3, 1, L) M-RoPE ids; the values do not change the cost, only the shape matters."""
    return torch.arange(start, start + length, device=device)[None, None].expand(3, 1, length)


def time_stages(
    setup: BenchSetup,
    qwen: Any,
    ratios: Sequence[float],
    *,
    device: torch.device,
    dtype: torch.dtype,
    repeats: int,
    warmup: int,
    decode_tokens: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Encoder, pruner (per ratio), prefill and per-token decode (per kept count), ms medians."""
    from transformers import DynamicCache
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

    from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig
    from fastdrive_ros.nn.vision import VisionEncoder

    say = print if progress else (lambda *_: None)
    timer = Timer(device=device, repeats=repeats, warmup=warmup)
    torch.manual_seed(0)
    vision_config = qwen.vision_config
    if not isinstance(vision_config, Qwen2_5_VLVisionConfig):
        vision_config = Qwen2_5_VLVisionConfig(**vision_config.to_dict())
    encoder = VisionEncoder(config=vision_config).to(device=device, dtype=dtype).eval()
    height, width = setup.image_size
    pixels = torch.randn(setup.cameras, 3, height, width, device=device, dtype=dtype)
    out: dict[str, Any] = {"pruner_ms": {}, "prefill_ms": {}, "decode_ms_per_token": {}}
    with torch.inference_mode():
        say(f"timing the vision encoder ({vision_config.depth} blocks) ...")
        out["encoder_ms"] = timer(lambda: encoder(pixels))
        visual = encoder(pixels)
        encoder = None  # free its weights before the LLM is built
        pruner = ReconPruner(config=ReconPrunerConfig.for_width(int(visual.tokens.shape[1])))
        pruner = pruner.to(device=device, dtype=dtype).eval()
        n = int(visual.tokens.shape[0])
        for ratio in ratios:
            k = keep_count(n, ratio)
            out["pruner_ms"][str(ratio)] = timer(lambda k=k: pruner.select(visual, k))
        pruner = None
        model, head, text = _text_model(qwen, device, dtype)
        cache_kw = cache_keyword(type(model).forward)
        width_d = int(text.hidden_size)
        for ratio in ratios:
            k = keep_count(n, ratio)
            length = k + setup.text_tokens
            say(f"timing prefill at {k} visual + {setup.text_tokens} text tokens ...")
            embeds = torch.randn(1, length, width_d, device=device, dtype=dtype)

            def prefill(embeds=embeds, length=length):
                cache = DynamicCache(config=text)
                hidden = model(
                    inputs_embeds=embeds,
                    position_ids=_positions(0, length, device),
                    use_cache=True,
                    **{cache_kw: cache},
                ).last_hidden_state
                if cache.get_seq_length() != length:
                    raise RuntimeError(f"the text model ignored {cache_kw!r}: its cache is empty")
                return head(hidden[:, -1]), cache

            out["prefill_ms"][str(ratio)] = timer(prefill)
            logits, cache = prefill()
            steps = []
            token = logits.argmax(-1)[:, None]
            for step in range(decode_tokens + warmup):
                latest: dict[str, torch.Tensor] = {}

                def decode(token=token, step=step, cache=cache, length=length, latest=latest):
                    hidden = model(
                        inputs_embeds=model.embed_tokens(token),
                        position_ids=_positions(length + step, 1, device),
                        use_cache=True,
                        **{cache_kw: cache},
                    ).last_hidden_state
                    latest["logits"] = head(hidden[:, -1])

                ms = timer.once(decode)
                token = latest["logits"].argmax(-1)[:, None]  # greedy, as the planner decodes
                if step >= warmup:
                    steps.append(ms)
            out["decode_ms_per_token"][str(ratio)] = float(torch.tensor(steps).median())
    return out
