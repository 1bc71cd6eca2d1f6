"""What LLM-stage token selection needs from the planner's layer loop, in one small module.

PrefillState is the token sequence between two layers; LLMStageSelector is the protocol FastV
and SparseVLM implement; text_attention recomputes a layer's attention probabilities (the
weights a fused SDPA/flash kernel never returns); LayerCache lets each layer cache its own length.
Also the few transformers-version shims the planner needs (4.49 .. 5.x).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


def text_model_class():
    """The text decoder class: Qwen2_5_VLTextModel (>= 4.52) or Qwen2_5_VLModel (4.49-4.51)."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling

    return getattr(modeling, "Qwen2_5_VLTextModel", None) or modeling.Qwen2_5_VLModel


# The KV-cache keyword of transformers' decoder layers and text models, newest first:
# 5.24 renamed it to `cache` (`past_key_values` deprecated until 5.40), 4.56 .. 5.23 use
# `past_key_values`, 4.49 .. 4.55 layers `past_key_value`. A keyword the callee does not name is
# swallowed by its **kwargs, and the cache silently stays empty: so pick from the signature.
CACHE_KEYWORDS: tuple[str, ...] = ("cache", "past_key_values", "past_key_value")


def cache_keyword(forward) -> str:
    """The KV-cache keyword `forward` (a transformers layer or model forward) takes by name."""
    params = inspect.signature(forward).parameters
    for name in CACHE_KEYWORDS:
        if name in params:
            return name
    import transformers

    raise RuntimeError(
        f"{getattr(forward, '__qualname__', forward)} (transformers {transformers.__version__}) "
        f"takes none of the KV-cache keywords {CACHE_KEYWORDS}: this transformers release is "
        "not supported; install the tested versions with `make venv` (constraints.txt)"
    )


def text_config_of(qwen_config):
    """The text part of a Qwen2_5_VLConfig (5.x / >= 4.52 nest it; older configs are flat)."""
    return getattr(qwen_config, "text_config", None) or qwen_config


def mrope_section_of(text_config) -> list[int]:
    rope = getattr(text_config, "rope_parameters", None) or getattr(
        text_config, "rope_scaling", None
    )
    return list((rope or {}).get("mrope_section", [16, 24, 24]))


class LayerCache:
    """Per-layer KV cache; layers may hold different lengths (tokens pruned between layers)."""

    def __init__(self) -> None:
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if layer_idx in self.keys:
            key_states = torch.cat([self.keys[layer_idx], key_states], dim=-2)
            value_states = torch.cat([self.values[layer_idx], value_states], dim=-2)
        self.keys[layer_idx], self.values[layer_idx] = key_states, value_states
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        keys = self.keys.get(layer_idx)
        return 0 if keys is None else int(keys.shape[-2])


@dataclass(frozen=True)
class PrefillState:
    """The token sequence between two LLM layers (batch 1).

    Attributes:
        hidden: [1, L, D] hidden states entering the next layer.
        positions: [3, 1, L] M-RoPE ids (full-sequence numbering).
        seq_index: [L] int64 index of each row in the FULL prompt (keeps causal order).
        visual_index: [L] int64 original visual-token index, -1 for text rows.
    """

    hidden: torch.Tensor
    positions: torch.Tensor
    seq_index: torch.Tensor
    visual_index: torch.Tensor

    @property
    def visual_rows(self) -> torch.Tensor:
        return torch.nonzero(self.visual_index >= 0).flatten()

    @property
    def text_rows(self) -> torch.Tensor:
        return torch.nonzero(self.visual_index < 0).flatten()

    def keep_rows(self, rows: torch.Tensor) -> PrefillState:
        """The state restricted to `rows` (any order; re-sorted into prompt order)."""
        rows = rows[torch.argsort(self.seq_index[rows])]
        return PrefillState(
            hidden=self.hidden[:, rows],
            positions=self.positions[:, :, rows],
            seq_index=self.seq_index[rows],
            visual_index=self.visual_index[rows],
        )

    def with_extra(
        self,
        *,
        hidden: torch.Tensor,
        positions: torch.Tensor,
        seq_index: torch.Tensor,
        visual_index: torch.Tensor,
    ) -> PrefillState:
        """Insert new rows ([R, D], [3, R], [R], [R]) at their prompt positions."""
        state = PrefillState(
            hidden=torch.cat([self.hidden, hidden[None].to(self.hidden.dtype)], dim=1),
            positions=torch.cat([self.positions, positions[:, None]], dim=2),
            seq_index=torch.cat([self.seq_index, seq_index]),
            visual_index=torch.cat([self.visual_index, visual_index]),
        )
        return state.keep_rows(torch.arange(state.seq_index.numel(), device=seq_index.device))


@runtime_checkable
class LLMStageSelector(Protocol):
    """Prunes visual tokens inside the planner's prefill, from the LLM's own attention.

    `prune_points(num_layers, n_visual, keep)` gives (layer j, visual tokens left) pairs: the
    selector sees the attention computed inside layer j - 1 and prunes before layer j; the last
    pair leaves exactly `keep`. `prune` gets that attention as probabilities [H, T, L] from every
    text row (T = state.text_rows, in order) to every row of the state. A selector with a
    `begin(state)` method gets the prompt's input embeddings before the first layer.
    """

    name: str
    stage: str  # "llm"

    def prune_points(self, num_layers: int, n_visual: int, keep: int) -> list[tuple[int, int]]: ...

    def prune(
        self, state: PrefillState, text_attention: torch.Tensor, budget: int
    ) -> PrefillState: ...


def text_attention(layer, rope, state: PrefillState, mrope_section: list[int]) -> torch.Tensor:
    """[H, T, L] attention probabilities of a decoder `layer` from the state's text rows.

    Recomputes the layer's queries (text rows only) and keys as transformers does (same
    projections, same rotary tables `rope` = rotary_emb(hidden, positions)), with an explicit
    causal mask (prompt order) and a float32 softmax: eager attention for those rows.
    """
    attn = layer.self_attn
    normed = layer.input_layernorm(state.hidden)
    rows = state.text_rows
    cos, sin = rope
    if cos.ndim == 4:  # transformers 4.x: sections recomposed inside the attention
        sections = mrope_section * 2
        cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sections, dim=-1))], -1)
        sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sections, dim=-1))], -1)
    head_dim = attn.head_dim
    q = attn.q_proj(normed[:, rows]).view(1, rows.numel(), -1, head_dim).transpose(1, 2)
    k = attn.k_proj(normed).view(1, normed.shape[1], -1, head_dim).transpose(1, 2)
    q = q * cos[:, None, rows] + _rotate_half(q) * sin[:, None, rows]
    k = k * cos[:, None] + _rotate_half(k) * sin[:, None]
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scaling = getattr(attn, "scaling", head_dim**-0.5)
    logits = (q @ k.transpose(-1, -2)).float() * scaling
    causal = state.seq_index[None, :] <= state.seq_index[rows][:, None]
    return logits.masked_fill(~causal, float("-inf")).softmax(dim=-1)[0]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def with_hidden(state: PrefillState, hidden: torch.Tensor) -> PrefillState:
    return PrefillState(
        hidden=hidden,
        positions=state.positions,
        seq_index=state.seq_index,
        visual_index=state.visual_index,
    )
