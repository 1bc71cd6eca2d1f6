"""The MAE-style reconstruction decoder of AFBR training (training only, never exported).

One decoder is shared by the foreground and the background branch: it sees the merged tokens of
one camera with zero vectors where a token was dropped, and paints each token back into its
28x28x3 patch. Positions come from a 2-D sine-cosine embedding (as MAE) plus 1-D rotary inside the
Qwen2 decoder layers (bidirectional), so a zeroed token still knows where its patch is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import (
    Qwen2DecoderLayer,
    Qwen2RMSNorm,
    Qwen2RotaryEmbedding,
)


@dataclass(frozen=True)
class ReconDecoderConfig:
    """Decoder shape.

    Attributes:
        hidden_size: D, width of the incoming merged tokens (the encoder's out_dim).
        num_layers: decoder layers (the paper uses 6).
        num_heads: attention heads (default: width / 64).
        patch_pixels: side of the pixel patch one token reconstructs (28 = 14 px x 2x2 merge).
        width: the decoder's own width (default min(D, 512), MAE's decoder width).
        intermediate_size: MLP width (default 4 x width).
    """

    hidden_size: int
    num_layers: int = 6
    num_heads: int | None = None
    patch_pixels: int = 28
    width: int | None = None
    intermediate_size: int | None = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e4

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.num_layers < 1 or self.patch_pixels < 1:
            raise ValueError(
                "hidden_size, num_layers and patch_pixels must be >= 1, got "
                f"{self.hidden_size}, {self.num_layers}, {self.patch_pixels}"
            )
        width = self.decoder_width
        if width % 4:
            raise ValueError(f"decoder width {width} must be a multiple of 4 (2-D sin-cos)")
        heads = self.heads
        if width % heads or (width // heads) % 2:
            raise ValueError(f"decoder width {width} must split into {heads} even-sized heads")

    @property
    def decoder_width(self) -> int:
        return int(self.width) if self.width is not None else min(self.hidden_size, 512)

    @property
    def heads(self) -> int:
        if self.num_heads is not None:
            return int(self.num_heads)
        return max(1, self.decoder_width // 64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconDecoderConfig:
        return cls(**data)


class ReconDecoder(torch.nn.Module):
    """Paints tokens back into pixels: [B, n, D] (zeros where dropped) -> [B, 3, 28 gh, 28 gw]."""

    def __init__(self, *, config: ReconDecoderConfig) -> None:
        super().__init__()
        if not isinstance(config, ReconDecoderConfig):
            raise TypeError(f"config must be a ReconDecoderConfig, got {type(config).__name__}")
        self.config = config
        width = config.decoder_width
        qwen = Qwen2Config(
            hidden_size=width,
            num_attention_heads=config.heads,
            num_key_value_heads=config.heads,
            intermediate_size=config.intermediate_size or 4 * width,
            num_hidden_layers=config.num_layers,
            rms_norm_eps=config.rms_norm_eps,
            rope_theta=config.rope_theta,
            vocab_size=1,
        )
        qwen._attn_implementation = "sdpa"
        self.embed = torch.nn.Linear(config.hidden_size, width)
        self.layers = torch.nn.ModuleList(
            Qwen2DecoderLayer(qwen, layer_idx=i) for i in range(config.num_layers)
        )
        for layer in self.layers:
            layer.self_attn.is_causal = False
        self.rotary = Qwen2RotaryEmbedding(qwen)
        self.norm = Qwen2RMSNorm(width, eps=config.rms_norm_eps)
        self.head = torch.nn.Linear(width, 3 * config.patch_pixels**2)
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """[B, n, D] with n = grid_h * grid_w (merged-token grid) -> [B, 3, gh*P, gw*P] pixels."""
        grid_h, grid_w = (int(v) for v in grid_hw)
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"tokens must be [B, n, {self.config.hidden_size}], got {tuple(tokens.shape)}"
            )
        if tokens.shape[1] != grid_h * grid_w:
            raise ValueError(
                f"{tokens.shape[1]} tokens do not fill a {grid_h}x{grid_w} merged-token grid"
            )
        batch, count, _ = tokens.shape
        x = self.embed(tokens)
        x = x + sincos_2d(grid_h, grid_w, x.shape[-1], device=x.device, dtype=x.dtype)
        positions = torch.arange(count, device=x.device).unsqueeze(0).expand(batch, -1)
        position_embeddings = self.rotary(x, positions)
        for layer in self.layers:
            x = layer(
                x, attention_mask=None, position_embeddings=position_embeddings, is_causal=False
            )
            x = x[0] if isinstance(x, tuple) else x  # older transformers return a tuple
        patches = self.head(self.norm(x))  # [B, n, 3 * P * P]
        p = self.config.patch_pixels
        image = patches.view(batch, grid_h, grid_w, 3, p, p).permute(0, 3, 1, 4, 2, 5)
        return image.reshape(batch, 3, grid_h * p, grid_w * p)


def sincos_2d(
    grid_h: int, grid_w: int, dim: int, *, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """[grid_h * grid_w, dim] fixed 2-D sine-cosine position embedding (MAE), raster order."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    rows = torch.arange(grid_h, device=device, dtype=torch.float32)
    cols = torch.arange(grid_w, device=device, dtype=torch.float32)
    row_angles = torch.outer(rows, omega)  # [gh, d/4]
    col_angles = torch.outer(cols, omega)  # [gw, d/4]
    row_part = torch.cat([row_angles.sin(), row_angles.cos()], dim=-1)  # [gh, d/2]
    col_part = torch.cat([col_angles.sin(), col_angles.cos()], dim=-1)  # [gw, d/2]
    emb = torch.cat(
        [
            row_part[:, None, :].expand(grid_h, grid_w, -1),
            col_part[None, :, :].expand(grid_h, grid_w, -1),
        ],
        dim=-1,
    )
    return emb.reshape(grid_h * grid_w, dim).to(dtype)
