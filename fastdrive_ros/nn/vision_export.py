"""An export-friendly twin of Qwen2.5-VL's vision tower: fixed shapes, no data-dependent indexing.

The stock tower builds its window permutation and per-window sequence lengths from `grid_thw` at
run time (`.tolist()`, boolean indexing, a Python loop over variable-length chunks), which the
dynamo ONNX exporter cannot trace and the legacy one unrolls into thousands of nodes (FACTS.md).
Here the image size is fixed, so every index is a constant: windows are padded to whole 112-px
windows (4x4 merged tokens), gathered into one batch and attended with a key-padding mask; the
full-attention blocks attend over each camera's tokens as one batch row. Same weights, same token
order (raster order of merged tokens per camera), same values up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.vision import (
    _ATTENTION_CHUNK_ELEMENTS,
    VisionEncoder,
    apply_vision_rotary,
    attention_scaling,
    vision_inv_freq,
    vision_position_ids,
    vision_rotary,
)


@dataclass(frozen=True)
class WindowLayout:
    """Constant index tensors of one image size (S patches per camera, W windows of L slots).

    Attributes:
        position_ids: [S, 2] (row, col) patch positions in processor order, for the 2-D rotary.
        window_index: [W * L] patch index per window slot; S (a zero row) where a slot is padding.
        window_valid: [W, L] bool, True where a slot holds a real patch.
        window_count: [W] number of real patches per window.
        inverse_index: [S] slot (into W * L) of every patch.
    """

    grid_hw: tuple[int, int]
    position_ids: torch.Tensor
    window_index: torch.Tensor
    window_valid: torch.Tensor
    window_count: torch.Tensor
    inverse_index: torch.Tensor

    @property
    def windows(self) -> int:
        return int(self.window_valid.shape[0])

    @property
    def slots(self) -> int:
        return int(self.window_valid.shape[1])


def window_layout(
    *,
    image_size: tuple[int, int],
    patch_size: int,
    merge_size: int,
    window_size: int,
    device: torch.device | str = "cpu",
) -> WindowLayout:
    """Index tensors for one fixed image size, with the stock tower's windows."""
    height, width = image_size
    factor = patch_size * merge_size
    if height <= 0 or width <= 0 or height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} must be a positive multiple of {factor} px")
    gh, gw = height // patch_size, width // patch_size
    mh, mw = gh // merge_size, gw // merge_size
    unit = merge_size * merge_size
    ws = window_size // factor  # merged tokens per window side
    n_merged = mh * mw
    position_ids = vision_position_ids(gh, gw, merge_size)  # [S, 2], processor order
    hp, wp = -(-mh // ws) * ws, -(-mw // ws) * ws
    merged = torch.full((hp, wp), n_merged, dtype=torch.long)
    merged[:mh, :mw] = torch.arange(n_merged).view(mh, mw)
    merged = merged.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    valid_merged = merged < n_merged  # [W, ws*ws]
    patch = merged.unsqueeze(-1) * unit + torch.arange(unit)  # [W, ws*ws, unit]
    valid = valid_merged.unsqueeze(-1).expand_as(patch).reshape(merged.shape[0], -1)
    seq = n_merged * unit
    window_index = torch.where(
        valid, patch.reshape(valid.shape), torch.full_like(valid, seq, dtype=torch.long)
    )
    flat = window_index.reshape(-1)
    inverse = torch.empty(seq, dtype=torch.long)
    slots = torch.arange(flat.numel())
    inverse[flat[valid.reshape(-1)]] = slots[valid.reshape(-1)]
    return WindowLayout(
        grid_hw=(gh, gw),
        position_ids=position_ids.to(device),
        window_index=flat.to(device),
        window_valid=valid.to(device),
        window_count=valid.sum(dim=1).to(device),
        inverse_index=inverse.to(device),
    )


class ExportableVisionEncoder(torch.nn.Module):
    """Fixed-size vision tower for export: [C, 3, H, W] normalised -> tokens [C, n_per_cam, D].

    Shares the weights of `encoder` (its `tower`); no data-dependent shapes, so
    `torch.onnx.export` (dynamo, opset <= 20) traces it into one static graph. With
    image_size=None the layout is fixed from each input's shape (still static once traced).
    """

    def __init__(self, *, encoder: VisionEncoder, image_size: tuple[int, int] | None) -> None:
        super().__init__()
        if not isinstance(encoder, VisionEncoder):
            raise TypeError(f"encoder must be a VisionEncoder, got {type(encoder).__name__}")
        self.encoder = encoder
        self._fixed: tuple[int, int] | None = None
        self._layouts: dict[tuple[int, int, str], WindowLayout] = {}
        if image_size is not None:
            height, width = (int(v) for v in image_size)
            layout = self._make_layout((height, width), torch.device("cpu"))
            self._fixed = (height, width)
            self.register_buffer("_position_ids", layout.position_ids, persistent=False)
            self.register_buffer("_window_index", layout.window_index, persistent=False)
            self.register_buffer("_window_valid", layout.window_valid, persistent=False)
            self.register_buffer("_window_count", layout.window_count, persistent=False)
            self.register_buffer("_inverse_index", layout.inverse_index, persistent=False)
            self._grid_hw = layout.grid_hw

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self._fixed

    def tokens_per_camera(self, image_size: tuple[int, int] | None = None) -> int:
        """n, merged tokens per camera at image_size (default: the fixed size)."""
        size = image_size or self._fixed
        if size is None:
            raise ValueError("no image size: pass one or build the encoder with image_size")
        factor = self.encoder.patch_size * self.encoder.merge_size
        return (size[0] // factor) * (size[1] // factor)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """[C, 3, H, W] normalised -> [C, n_per_cam, D] merged tokens, raster order per camera."""
        return self._run(pixels, with_attention=False)[0]

    def forward_with_attention(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As forward, plus [C, n_per_cam] attention received per merged token.

        Same definition as VisionEncoder(return_attention=True): in the last full-attention
        block, mean over heads and over the queries that see the token, then over its patches.
        """
        tokens, received = self._run(pixels, with_attention=True)
        assert received is not None
        return tokens, received

    # -- internals -------------------------------------------------------------------------------

    def _make_layout(self, size: tuple[int, int], device: torch.device) -> WindowLayout:
        config = self.encoder.config
        return window_layout(
            image_size=size,
            patch_size=self.encoder.patch_size,
            merge_size=self.encoder.merge_size,
            window_size=int(config.window_size),
            device=device,
        )

    def _inv_freq(self, device: torch.device) -> torch.Tensor:
        """Rotary frequencies from the config, exact in float32 whatever dtype the weights use.

        Built on every call (a few scalars): a cached tensor attribute would be mutable state to
        the exporter, and a buffer would be rounded by .half().
        """
        return vision_inv_freq(self.encoder.config).to(device)

    def _layout(self, pixels: torch.Tensor) -> WindowLayout:
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels must be [C, 3, H, W], got {tuple(pixels.shape)}")
        size = (int(pixels.shape[2]), int(pixels.shape[3]))
        if self._fixed is not None:
            if size != self._fixed:
                raise ValueError(
                    f"this exportable encoder is fixed to {self._fixed[0]}x{self._fixed[1]} px, "
                    f"got {size[0]}x{size[1]}: resize the cameras or build another"
                )
            return WindowLayout(
                grid_hw=self._grid_hw,
                position_ids=self._position_ids,
                window_index=self._window_index,
                window_valid=self._window_valid,
                window_count=self._window_count,
                inverse_index=self._inverse_index,
            )
        key = (size[0], size[1], str(pixels.device))
        if key not in self._layouts:
            self._layouts[key] = self._make_layout(size, pixels.device)
        return self._layouts[key]

    def _run(
        self, pixels: torch.Tensor, *, with_attention: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        layout = self._layout(pixels)
        tower = self.encoder.tower
        patch, merge = self.encoder.patch_size, self.encoder.merge_size
        weight = tower.patch_embed.proj.weight  # [E, 3, T, p, p]
        x = pixels.to(weight.dtype)
        cams = x.shape[0]
        gh, gw = layout.grid_hw
        # A still frame repeated T times through a Conv3d = a Conv2d with the T kernels summed.
        h = F.conv2d(x, weight.sum(dim=2), stride=patch)  # [C, E, gh, gw]
        embed = h.shape[1]
        h = h.reshape(cams, embed, gh // merge, merge, gw // merge, merge)
        h = h.permute(0, 2, 4, 3, 5, 1).reshape(cams, gh * gw, embed)  # processor order
        cos, sin = vision_rotary(self._inv_freq(pixels.device), layout.position_ids)
        attention_block = self.encoder.attention_block
        received = None
        for index, block in enumerate(tower.blocks):
            full = index in tower.fullatt_block_indexes
            want = with_attention and index == attention_block
            out, got = self._attention(block.attn, block.norm1(h), cos, sin, layout, full, want)
            if want:
                received = got
            h = h + out
            h = h + block.mlp(block.norm2(h))
        unit = merge * merge
        tokens = tower.merger(h).reshape(cams, gh * gw // unit, -1)
        if received is not None:
            received = received.reshape(cams, -1, unit).mean(dim=-1)
        return tokens, received

    def _attention(
        self,
        attn: torch.nn.Module,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        layout: WindowLayout,
        full: bool,
        want_attention: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of one block: x [C, S, E] -> (output [C, S, E], received [C, S] or None)."""
        cams, seq, embed = x.shape
        heads = attn.num_heads
        scaling = attention_scaling(attn)
        qkv = attn.qkv(x).reshape(cams, seq, 3, heads, embed // heads)
        q, k, v = qkv.unbind(dim=2)  # [C, S, heads, hd]
        q, k = apply_vision_rotary(q, k, cos, sin)
        received = None
        if full:
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [C, heads, S, hd]
            if want_attention:
                out, received = _explicit_attention(q, k, v, scaling, None, None)
            else:
                out = F.scaled_dot_product_attention(q, k, v, scale=scaling)
            out = out.transpose(1, 2).reshape(cams, seq, embed)
        else:
            windows, slots = layout.windows, layout.slots

            def to_windows(t: torch.Tensor) -> torch.Tensor:
                t = F.pad(t, (0, 0, 0, 0, 0, 1))  # a zero patch at index S for padded slots
                t = t.index_select(1, layout.window_index)  # [C, W*L, heads, hd]
                return t.reshape(cams * windows, slots, heads, -1).transpose(1, 2)

            qw, kw, vw = to_windows(q), to_windows(k), to_windows(v)  # [C*W, heads, L, hd]
            valid = layout.window_valid.unsqueeze(0).expand(cams, windows, slots)
            valid = valid.reshape(cams * windows, 1, 1, slots)
            if want_attention:
                count = layout.window_count.repeat(cams)
                out, got = _explicit_attention(qw, kw, vw, scaling, valid, count)
                received = got.reshape(cams, windows * slots).index_select(1, layout.inverse_index)
            else:
                out = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=valid, scale=scaling)
            out = out.transpose(1, 2).reshape(cams, windows * slots, embed)
            out = out.index_select(1, layout.inverse_index)  # back to [C, S, E]
        return attn.proj(out), received


def _explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scaling: float,
    key_valid: torch.Tensor | None,
    valid_count: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with its probabilities reduced to "attention received" per key.

    q, k, v: [B, heads, L, hd]; key_valid: [B, 1, 1, L] bool or None; valid_count: [B] real
    queries per row or None (all L). Returns (out [B, heads, L, hd], received [B, L]), received
    = mean over heads and real queries. Query chunks are a static Python loop (export unrolls it).
    """
    batch, heads, length, _ = q.shape
    chunk = max(1, _ATTENTION_CHUNK_ELEMENTS // max(1, batch * heads * length))
    kt = k.float().transpose(-1, -2)
    vf = v.float()
    outs = []
    total = torch.zeros(batch, length, dtype=torch.float32, device=q.device)
    query_valid = None
    if key_valid is not None:
        query_valid = key_valid.reshape(batch, 1, length, 1).to(torch.float32)
    for start in range(0, length, chunk):
        stop = min(length, start + chunk)
        logits = (q[:, :, start:stop].float() @ kt) * scaling
        if key_valid is not None:
            logits = logits.masked_fill(~key_valid, float("-inf"))
        probs = logits.softmax(dim=-1)  # [B, heads, c, L]
        outs.append(probs @ vf)
        if query_valid is not None:
            probs = probs * query_valid[:, :, start:stop]
        total = total + probs.sum(dim=(1, 2))
    out = torch.cat(outs, dim=2).to(q.dtype)
    queries = (
        torch.full((batch,), float(length), device=q.device)
        if valid_count is None
        else valid_count.to(torch.float32)
    )
    return out, total / (heads * queries).unsqueeze(-1)
