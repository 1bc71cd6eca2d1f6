"""Analytic token counts and matmul FLOPs of a Qwen2.5-VL model, from its config alone.

Why analytic: wall-clock times depend on the machine, FLOPs do not, so the efficiency table can be
compared with the paper's on any host (FACTS.md: LLM prefill ~20 TFLOP at 3249 visual tokens, ~5
at 812; the ViT ~16 TFLOP for 6x510 tokens whatever the keep ratio).

Counted: every matrix multiply (2 FLOPs per multiply-add), including attention scores and the
attention-weighted sum; not counted: norms, activations, rotary embeddings, softmax (a few % at
most). The vision tower follows Qwen2.5-VL exactly: a Conv3d patch embedding (3 x 2 x 14 x 14 ->
width), blocks with fused qkv + proj and a gated MLP, window attention inside 112-px windows
(4 x 4 merged tokens = 64 patches, clipped at the image edge) except the full-attention blocks
(attention over each image's patches), and the 2x2 merger MLP. The LLM prefill counts causal
attention (query i attends to i + 1 keys) and the LM head at the last position only (generation
needs only the next-token logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

TFLOP = 1e12


def _field(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if value is not None:
            return value
    if default is not None:
        return default
    raise ValueError(f"model config lacks {' / '.join(names)}: cannot count FLOPs")


@dataclass(frozen=True)
class VisionShape:
    """The vision tower hyper-parameters that decide its cost (Qwen2_5_VLVisionConfig names)."""

    depth: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    out_hidden_size: int
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    window_size: int = 112
    in_channels: int = 3
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)

    @classmethod
    def from_config(cls, config: Any) -> VisionShape:
        """From a Qwen2_5_VLVisionConfig or a plain dict of the same fields."""
        return cls(
            depth=int(_field(config, "depth", "num_hidden_layers")),
            hidden_size=int(_field(config, "hidden_size")),
            intermediate_size=int(_field(config, "intermediate_size")),
            num_heads=int(_field(config, "num_heads", "num_attention_heads")),
            out_hidden_size=int(_field(config, "out_hidden_size")),
            patch_size=int(_field(config, "patch_size", default=14)),
            temporal_patch_size=int(_field(config, "temporal_patch_size", default=2)),
            spatial_merge_size=int(_field(config, "spatial_merge_size", default=2)),
            window_size=int(_field(config, "window_size", default=112)),
            in_channels=int(_field(config, "in_channels", default=3)),
            fullatt_block_indexes=tuple(
                int(i) for i in _field(config, "fullatt_block_indexes", default=())
            ),
        )

    @property
    def token_pixels(self) -> int:
        """Side of the square one merged token covers (28 px for Qwen2.5-VL)."""
        return self.patch_size * self.spatial_merge_size


@dataclass(frozen=True)
class TextShape:
    """The LLM hyper-parameters that decide its cost (Qwen2_5_VLTextConfig names)."""

    num_hidden_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    head_dim: int

    @classmethod
    def from_config(cls, config: Any) -> TextShape:
        hidden = int(_field(config, "hidden_size"))
        heads = int(_field(config, "num_attention_heads"))
        return cls(
            num_hidden_layers=int(_field(config, "num_hidden_layers")),
            hidden_size=hidden,
            intermediate_size=int(_field(config, "intermediate_size")),
            num_attention_heads=heads,
            num_key_value_heads=int(_field(config, "num_key_value_heads", default=heads)),
            vocab_size=int(_field(config, "vocab_size")),
            head_dim=int(_field(config, "head_dim", default=hidden // heads)),
        )

    @property
    def linear_flops_per_token(self) -> int:
        """q, k, v, o projections and the gated MLP of all layers, for one token."""
        h, d = self.hidden_size, self.head_dim
        q_out, kv_out = self.num_attention_heads * d, self.num_key_value_heads * d
        per_layer = h * q_out + 2 * h * kv_out + q_out * h + 3 * h * self.intermediate_size
        return 2 * per_layer * self.num_hidden_layers


def merged_grid(image_size: tuple[int, int], *, token_pixels: int = 28) -> tuple[int, int]:
    """(H, W) pixels -> (rows, cols) of merged tokens; H and W must be multiples of a token."""
    height, width = image_size
    if height <= 0 or width <= 0 or height % token_pixels or width % token_pixels:
        raise ValueError(
            f"image size {height}x{width} must be positive multiples of {token_pixels} px "
            "(one merged token): resize to a multiple first, as Qwen2.5-VL's processor does"
        )
    return height // token_pixels, width // token_pixels


def visual_token_count(
    image_size: tuple[int, int], *, cameras: int = 1, token_pixels: int = 28
) -> int:
    """Merged visual tokens for `cameras` images of (H, W): 1596x1596 -> 57 x 57 = 3249."""
    rows, cols = merged_grid(image_size, token_pixels=token_pixels)
    return cameras * rows * cols


def _window_sides(n: int, window: int) -> list[int]:
    return [window] * (n // window) + ([n % window] if n % window else [])


def vision_flops(shape: VisionShape, image_size: tuple[int, int], *, cameras: int) -> dict:
    """Matmul FLOPs of the vision tower on `cameras` images of (H, W), by part.

    Returns {"patch_embed", "linear", "window_attention", "full_attention", "merger", "total"}.
    """
    rows, cols = merged_grid(image_size, token_pixels=shape.token_pixels)
    unit = shape.spatial_merge_size**2
    patches = rows * cols * unit
    h, i = shape.hidden_size, shape.intermediate_size
    kernel = shape.in_channels * shape.temporal_patch_size * shape.patch_size**2
    patch_embed = 2 * kernel * h * patches
    linear = 2 * (3 * h * h + h * h + 3 * h * i) * patches * shape.depth
    full_blocks = sum(1 for b in range(shape.depth) if b in set(shape.fullatt_block_indexes))
    window = shape.window_size // shape.token_pixels
    window_sq = sum(
        (a * b * unit) ** 2
        for a in _window_sides(rows, window)
        for b in _window_sides(cols, window)
    )
    window_attention = 4 * h * window_sq * (shape.depth - full_blocks)
    full_attention = 4 * h * patches**2 * full_blocks
    merged = h * unit
    merger = 2 * (merged * merged + merged * shape.out_hidden_size) * rows * cols
    parts = {
        "patch_embed": patch_embed,
        "linear": linear,
        "window_attention": window_attention,
        "full_attention": full_attention,
        "merger": merger,
    }
    parts = {name: value * cameras for name, value in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def llm_prefill_flops(
    shape: TextShape,
    tokens_per_layer: int | Sequence[int],
    *,
    attention: Literal["causal", "full"] = "causal",
    lm_head_positions: int = 1,
) -> dict:
    """Matmul FLOPs of the LLM prefill, by part: {"linear", "attention", "lm_head", "total"}.

    `tokens_per_layer`: the sequence length (visual + text tokens), one number for every layer or
    one per layer (LLM-stage pruners such as FastV shorten the sequence after layer k).
    `attention="full"` counts the whole L x L score matrix (what a dense SDPA kernel computes).
    """
    lengths = (
        [int(tokens_per_layer)] * shape.num_hidden_layers
        if isinstance(tokens_per_layer, int)
        else [int(n) for n in tokens_per_layer]
    )
    if len(lengths) != shape.num_hidden_layers or min(lengths) <= 0:
        raise ValueError(
            f"need {shape.num_hidden_layers} positive sequence lengths, got {len(lengths)}"
        )
    per_layer_linear = shape.linear_flops_per_token // shape.num_hidden_layers
    q_width = shape.num_attention_heads * shape.head_dim
    linear = sum(per_layer_linear * n for n in lengths)
    pairs = [n * (n + 1) // 2 if attention == "causal" else n * n for n in lengths]
    attn = sum(4 * q_width * p for p in pairs)
    lm_head = 2 * shape.hidden_size * shape.vocab_size * lm_head_positions
    return {
        "linear": linear,
        "attention": attn,
        "lm_head": lm_head,
        "total": linear + attn + lm_head,
    }


def llm_decode_flops_per_token(shape: TextShape, context: int) -> int:
    """Matmul FLOPs to generate one token with a KV cache of `context` earlier tokens."""
    q_width = shape.num_attention_heads * shape.head_dim
    attn = 4 * q_width * (context + 1) * shape.num_hidden_layers
    return shape.linear_flops_per_token + attn + 2 * shape.hidden_size * shape.vocab_size


def reconpruner_flops(
    *,
    hidden_size: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    tokens_per_camera: Sequence[int],
) -> int:
    """One bidirectional Qwen2 decoder layer over [query; tokens] per camera, plus the scorer."""
    head_dim = hidden_size // num_heads
    layer = TextShape(
        num_hidden_layers=1,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        vocab_size=1,
        head_dim=head_dim,
    )
    total = 0
    for n in tokens_per_camera:
        length = n + 1
        total += layer.linear_flops_per_token * length + 4 * hidden_size * length * length
        total += 2 * hidden_size * n  # Linear_D->1 on V* (.) Q*
    return total
