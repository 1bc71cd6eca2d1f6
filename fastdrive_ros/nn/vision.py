"""Qwen2.5-VL's vision tower as the project's encoder: pixels of several cameras -> merged tokens.

The tower itself is transformers' `Qwen2_5_VisionTransformerPretrainedModel` (14-px patches, window
attention with a few full-attention blocks, 2x2 merger), so real checkpoints (Qwen2.5-VL-3B,
Impromptu-VLA 3B) load unchanged. Preprocessing is done in torch (no PIL/torchvision processor),
identically for training, evaluation and the node; patchify reproduces the HF processor's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLVisionConfig,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel,
)

from fastdrive_ros.nn.resize import check_mode, resize_pixels
from fastdrive_ros.nn.selection import VisualTokens

if TYPE_CHECKING:
    from fastdrive_ros.nn.vision_export import ExportableVisionEncoder

# Qwen2.5-VL normalises with the OpenAI CLIP statistics (Qwen2VLImageProcessor.image_mean / std).
QWEN_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
QWEN_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

VISUAL_PREFIXES: tuple[str, ...] = ("model.visual.", "visual.")
# Attention probabilities are materialised in query chunks of at most this many elements.
_ATTENTION_CHUNK_ELEMENTS = 1 << 25


def normalize_images(images_uint8_or_float: torch.Tensor) -> torch.Tensor:
    """[C, H, W, 3] uint8 RGB or [C, 3, H, W] float in 0..1 -> [C, 3, H, W] normalised float32."""
    x = images_uint8_or_float
    if x.ndim != 4:
        raise ValueError(
            f"images must be 4-D ([C,H,W,3] uint8 or [C,3,H,W] float), got {x.ndim}-D"
        )
    if x.dtype == torch.uint8:
        if x.shape[-1] != 3:
            raise ValueError(f"uint8 images must be [C, H, W, 3] RGB, got {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    elif x.is_floating_point():
        if x.shape[1] != 3:
            raise ValueError(f"float images must be [C, 3, H, W] in 0..1, got {tuple(x.shape)}")
        x = x.to(torch.float32)
    else:
        raise ValueError(f"images must be uint8 or floating point, got {x.dtype}")
    mean, std = _qwen_stats(x)
    return (x - mean) / std


def _qwen_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QWEN_MEAN and QWEN_STD as [1, 3, 1, 1] tensors of x's dtype and device."""
    mean = torch.tensor(QWEN_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(QWEN_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def preprocess_images(
    images: torch.Tensor, *, size: tuple[int, int], resize: str = "bilinear"
) -> torch.Tensor:
    """THE preprocessing of every camera image (training, evaluation and the node share it).

    [C, H0, W0, 3] uint8 RGB on any device -> resize to size = (H, W) (`resize`: antialiased
    "bilinear", Qwen's "bicubic" or Impromptu-VLA's "impromptu" pipeline; nn/resize.py) ->
    Qwen normalisation -> [C, 3, H, W] float32 on the same device. The float image is this
    function's own, so it is scaled and normalised in place (the same values as
    normalize_images, without three more frame-sized allocations per call).
    """
    height, width = _check_preprocess(images, size)
    check_mode(resize)
    return _resize_normalise(images.permute(0, 3, 1, 2).to(torch.float32), (height, width), resize)


class ImagePreprocessor:
    """preprocess_images for a stream of frames, reusing the full-size float image.

    Converting [C, H0, W0, 3] uint8 to float allocates C x H0 x W0 x 12 bytes: 104 MB for six
    1600x900 cameras, fresh pages from the OS on every frame (glibc maps blocks this large
    anew each time). Here that intermediate is kept and overwritten by the next frame of the
    same shape; outputs are new tensors, bit for bit those of preprocess_images. One per
    pipeline: calls must not overlap.
    """

    def __init__(self, *, size: tuple[int, int], resize: str = "bilinear") -> None:
        if len(size) != 2 or min(int(s) for s in size) <= 0:
            raise ValueError(f"size must be positive (H, W), got {size}")
        self.size = (int(size[0]), int(size[1]))
        self.resize = check_mode(resize)
        self._scratch: torch.Tensor | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """[C, H0, W0, 3] uint8 RGB -> [C, 3, H, W] float32 normalised (see preprocess_images)."""
        size = _check_preprocess(images, self.size)
        source = images.permute(0, 3, 1, 2)
        if tuple(source.shape[-2:]) == size:  # no resize: the float image is the output itself
            return _resize_normalise(source.to(torch.float32), size, self.resize)
        scratch = self._scratch
        if (
            scratch is None
            or scratch.shape != source.shape
            or scratch.stride() != source.stride()
            or scratch.device != source.device
        ):  # the strides .to(float32) would give, so the resize takes the same kernel
            scratch = self._scratch = torch.empty_like(source, dtype=torch.float32)
        return _resize_normalise(scratch.copy_(source), size, self.resize)


def _check_preprocess(images: torch.Tensor, size: tuple[int, int]) -> tuple[int, int]:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ValueError(
            f"images must be [C, H, W, 3] uint8 RGB, got {images.dtype} {tuple(images.shape)}"
        )
    height, width = (int(s) for s in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive (H, W), got {size}")
    return height, width


def _resize_normalise(
    x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """[C, 3, H0, W0] float32 0..255 -> [C, 3, H, W] normalised; x itself when not resized."""
    x = resize_pixels(x, size, mode)
    mean, std = _qwen_stats(x)
    return x.clamp_(0.0, 255.0).div_(255.0).sub_(mean).div_(std)


def patchify(
    pixels: torch.Tensor,
    *,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten still images into Qwen2.5-VL patches, in the HF processor's order.

    [C, 3, H, W] normalised (H, W multiples of patch_size * merge_size) -> (patches
    [C * h * w, 3 * temporal * patch * patch], grid_thw [C, 3] int64 with rows (1, h, w)). Each
    frame is repeated `temporal_patch_size` times, as Qwen does for still images; patches come
    2x2-merge-block-major (the order the merger expects).
    """
    _check_pixels(pixels, patch_size * merge_size)
    cams, channels, height, width = pixels.shape
    gh, gw = height // patch_size, width // patch_size
    x = pixels.reshape(
        cams,
        channels,
        gh // merge_size,
        merge_size,
        patch_size,
        gw // merge_size,
        merge_size,
        patch_size,
    )
    # -> (C, gh/m, gw/m, m, m, channels, p, p), then repeat the frame along a temporal axis.
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7).unsqueeze(6)
    x = x.expand(*x.shape[:6], temporal_patch_size, patch_size, patch_size)
    flat = x.reshape(cams * gh * gw, channels * temporal_patch_size * patch_size * patch_size)
    grid = torch.tensor([[1, gh, gw]] * cams, dtype=torch.int64, device=pixels.device)
    return flat, grid


def _check_pixels(pixels: torch.Tensor, factor: int) -> None:
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be [C, 3, H, W], got {tuple(pixels.shape)}")
    if pixels.shape[0] < 1:
        raise ValueError("pixels hold no camera image (C = 0)")
    height, width = pixels.shape[-2:]
    if height % factor or width % factor or height == 0 or width == 0:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of {factor} px (patch x merge): "
            "resize the cameras to a multiple of it (preprocess_images(size=...))"
        )


class VisionEncoder(torch.nn.Module):
    """Qwen2.5-VL vision tower: [C, 3, H, W] normalised pixels -> merged tokens of all cameras.

    Cameras are separate still images (one grid_thw row each, t = 1); tokens come camera-major,
    raster order inside a camera, D = config.out_hidden_size. The weights live in `tower`, the
    stock transformers module; `exportable()` gives a fixed-shape twin sharing them.
    """

    def __init__(self, *, config: Qwen2_5_VLVisionConfig) -> None:
        super().__init__()
        if not isinstance(config, Qwen2_5_VLVisionConfig):
            raise TypeError(
                f"config must be a Qwen2_5_VLVisionConfig, got {type(config).__name__}"
            )
        window_tokens = config.window_size // (config.patch_size * config.spatial_merge_size)
        if window_tokens < 1 or config.window_size % (
            config.patch_size * config.spatial_merge_size
        ):
            raise ValueError(
                f"window_size {config.window_size} must be a multiple of patch_size x merge "
                f"({config.patch_size} x {config.spatial_merge_size})"
            )
        bad = [i for i in config.fullatt_block_indexes if not 0 <= i < config.depth]
        if bad:
            raise ValueError(f"fullatt_block_indexes {bad} outside 0..{config.depth - 1}")
        self.tower = Qwen2_5_VisionTransformerPretrainedModel(config)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, dtype: torch.dtype = torch.float32
    ) -> VisionEncoder:
        """Load only the vision weights of a local Hugging Face Qwen2.5-VL checkpoint folder.

        The folder holds config.json and *.safetensors shards (optionally with
        model.safetensors.index.json); vision keys are "visual.*" or "model.visual.*".
        """
        from safetensors import safe_open

        folder = Path(folder)
        config = load_vision_config(folder)
        shards = _vision_shards(folder)
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            with safe_open(str(shard), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    prefix = next((p for p in VISUAL_PREFIXES if key.startswith(p)), None)
                    if prefix is not None:
                        state[key[len(prefix) :]] = handle.get_tensor(key).to(dtype)
        if not state:
            names = ", ".join(s.name for s in shards)
            raise ValueError(
                f"no vision weights (keys 'visual.*' or 'model.visual.*') in {names} of {folder}"
            )
        with _skip_weight_init():  # every weight is overwritten below (a 3B tower: seconds)
            encoder = cls(config=config)
        missing, unexpected = encoder.tower.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"vision weights in {folder} do not fit the config: {len(missing)} missing "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
            )
        encoder = encoder.to(dtype).eval()
        encoder._keep_rotary_float32()
        return encoder

    @property
    def config(self) -> Qwen2_5_VLVisionConfig:
        return self.tower.config

    @property
    def out_dim(self) -> int:
        """D, the width of a merged token (the planner's hidden size)."""
        return int(self.config.out_hidden_size)

    @property
    def patch_size(self) -> int:
        return int(self.config.patch_size)

    @property
    def merge_size(self) -> int:
        return int(self.config.spatial_merge_size)

    @property
    def temporal_patch_size(self) -> int:
        return int(self.config.temporal_patch_size)

    @property
    def attention_block(self) -> int:
        """Block whose attention `return_attention` reports: the last full-attention block."""
        full = list(self.config.fullatt_block_indexes)
        return max(full) if full else int(self.config.depth) - 1

    def forward(self, pixels: torch.Tensor, *, return_attention: bool = False) -> VisualTokens:
        """[C, 3, H, W] normalised -> VisualTokens(tokens [N, D], grid_thw [C, 3], aux).

        With return_attention, aux["attention_received"] [N] is the attention each merged token
        receives in `attention_block` (mean over heads and over the queries that can see it, then
        over its 2x2 patches); VisPruner ranks by it.
        """
        flat, grid = patchify(
            pixels,
            patch_size=self.patch_size,
            temporal_patch_size=self.temporal_patch_size,
            merge_size=self.merge_size,
        )
        dtype = next(self.tower.parameters()).dtype
        self._keep_rotary_float32()
        captured: dict[str, object] = {}
        with self._capture_attention_input(captured, enabled=return_attention):
            out = self.tower(flat.to(dtype), grid_thw=grid)
        # transformers 5 returns an output object, 4.x the merged tensor itself
        tokens = out if isinstance(out, torch.Tensor) else out.pooler_output
        aux: dict[str, torch.Tensor] = {}
        if return_attention:
            aux["attention_received"] = self._attention_received(captured, pixels.shape)
        return VisualTokens(tokens=tokens, grid_thw=grid, aux=aux)

    def exportable(self, image_size: tuple[int, int] | None = None) -> ExportableVisionEncoder:
        """A fixed-shape, export-friendly twin sharing these weights (see vision_export.py).

        image_size (H, W) fixes the layout now; None fixes it from each input's shape.
        """
        from fastdrive_ros.nn.vision_export import ExportableVisionEncoder

        twin = ExportableVisionEncoder(encoder=self, image_size=image_size)
        twin.training = self.training  # the twin adds no layers of its own; keep the mode
        return twin

    def _keep_rotary_float32(self) -> None:
        """Undo a .half() / .to(bfloat16) of the rotary frequencies (HF keeps them in float32)."""
        rotary = self.tower.rotary_pos_emb
        if rotary.inv_freq.dtype != torch.float32:
            rotary.inv_freq = vision_inv_freq(self.config).to(rotary.inv_freq.device)

    @contextmanager
    def _capture_attention_input(self, captured: dict, *, enabled: bool) -> Iterator[None]:
        """Record the (normed) input of `attention_block`'s attention during one tower call."""
        if not enabled:
            yield
            return

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            captured["hidden"] = args[0] if args else kwargs["hidden_states"]
            captured["cu_seqlens"] = args[1] if len(args) > 1 else kwargs["cu_seqlens"]
            cos_sin = kwargs.get("position_embeddings")
            if cos_sin is None:  # early transformers 4.x pass rotary angles instead
                angles = kwargs["rotary_pos_emb"].float()
                emb = torch.cat([angles, angles], dim=-1)
                cos_sin = (emb.cos(), emb.sin())
            captured["position_embeddings"] = cos_sin

        attn = self.tower.blocks[self.attention_block].attn
        handle = attn.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    @torch.no_grad()
    def _attention_received(self, captured: dict, shape: torch.Size) -> torch.Tensor:
        """[N] attention received per merged token, back in raster order."""
        attn = self.tower.blocks[self.attention_block].attn
        hidden = captured["hidden"]
        cos, sin = captured["position_embeddings"]
        seq = hidden.shape[0]
        qkv = attn.qkv(hidden).reshape(seq, 3, attn.num_heads, -1).permute(1, 0, 2, 3)
        q, k = apply_vision_rotary(qkv[0], qkv[1], cos, sin)
        bounds = captured["cu_seqlens"].tolist()
        received = torch.zeros(seq, dtype=torch.float32, device=hidden.device)
        for start, end in zip(bounds[:-1], bounds[1:]):
            if end > start:
                received[start:end] = segment_attention_received(
                    q[start:end], k[start:end], scaling=attention_scaling(attn)
                )
        unit = self.merge_size**2
        merged = received.view(seq // unit, unit).mean(dim=1)  # the tower's window order
        cams, factor = shape[0], self.patch_size * self.merge_size
        order = merged_window_order(
            shape[2] // factor, shape[3] // factor, self.config.window_size // factor
        ).to(merged.device)
        per_camera = order.numel()
        window_index = torch.cat([order + c * per_camera for c in range(cams)])
        return merged[torch.argsort(window_index)]


def vision_inv_freq(config: Qwen2_5_VLVisionConfig) -> torch.Tensor:
    """[head_dim / 4] float32 rotary frequencies of the tower (theta 10000 unless configured)."""
    rope = getattr(config, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", 10000.0))
    dim = (config.hidden_size // config.num_heads) // 2
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))


def vision_position_ids(grid_h: int, grid_w: int, merge_size: int) -> torch.Tensor:
    """[grid_h * grid_w, 2] (row, col) of every patch, in processor (merge-block-major) order."""
    rows = torch.arange(grid_h).view(-1, 1).expand(grid_h, grid_w)
    cols = torch.arange(grid_w).view(1, -1).expand(grid_h, grid_w)
    shape = (grid_h // merge_size, merge_size, grid_w // merge_size, merge_size)
    rows = rows.reshape(shape).permute(0, 2, 1, 3).flatten()
    cols = cols.reshape(shape).permute(0, 2, 1, 3).flatten()
    return torch.stack([rows, cols], dim=-1)


def vision_rotary(
    inv_freq: torch.Tensor, position_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2.5-VL's 2-D rotary: [S, 2] positions -> (cos, sin) [S, head_dim] float32.

    inv_freq is the tower's rotary_pos_emb.inv_freq (head_dim / 4 frequencies): rows and columns
    rotate half of the head each, as transformers 4.x and 5.x both compute it.
    """
    freqs = position_ids.to(torch.float32).unsqueeze(-1) * inv_freq.to(torch.float32)
    emb = freqs.flatten(-2)  # [S, head_dim / 2]: row frequencies, then column frequencies
    emb = torch.cat([emb, emb], dim=-1)
    return emb.cos(), emb.sin()


def apply_vision_rotary(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q, k [..., S, heads, head_dim] by cos, sin [S, head_dim] (in float32, as HF)."""
    cos, sin = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()

    def rotate(x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        half = xf.shape[-1] // 2
        rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
        return (xf * cos + rotated * sin).to(x.dtype)

    return rotate(q), rotate(k)


def merged_window_order(merged_h: int, merged_w: int, window_tokens: int) -> torch.Tensor:
    """[merged_h * merged_w] raster indices of merged tokens in the tower's window order.

    Windows of window_tokens x window_tokens merged tokens, row-major, raster order inside; the
    last row/column of windows is partial when the grid does not divide (as HF pads and drops).
    """
    ws = window_tokens
    hp, wp = -(-merged_h // ws) * ws, -(-merged_w // ws) * ws
    grid = torch.full((hp, wp), -1, dtype=torch.long)
    grid[:merged_h, :merged_w] = torch.arange(merged_h * merged_w).view(merged_h, merged_w)
    grid = grid.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1)
    return grid[grid >= 0]


def attention_scaling(attn: torch.nn.Module) -> float:
    """1 / sqrt(head_dim) of a vision attention module (early transformers 4.x store no scale)."""
    head_dim = attn.qkv.in_features // attn.num_heads
    return float(getattr(attn, "scaling", head_dim**-0.5))


def segment_attention_received(
    q: torch.Tensor, k: torch.Tensor, *, scaling: float
) -> torch.Tensor:
    """Mean attention each key receives within one attention segment.

    q, k: [L, heads, head_dim] (rotary already applied) -> [L] float32, the mean over heads and
    over the L queries of softmax(q k^T * scaling); computed in query chunks to bound memory.
    """
    length, heads, _ = q.shape
    qh = q.transpose(0, 1).float()
    kh = k.transpose(0, 1).float()
    chunk = max(1, _ATTENTION_CHUNK_ELEMENTS // max(1, heads * length))
    total = torch.zeros(length, dtype=torch.float32, device=q.device)
    for start in range(0, length, chunk):
        logits = qh[:, start : start + chunk] @ kh.transpose(1, 2) * scaling
        total += logits.softmax(dim=-1).sum(dim=(0, 1))
    return total / (heads * length)


def _skip_weight_init():
    """Skip random init: no_init_weights (transformers 5.x initialization, 4.x modeling_utils)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


def load_vision_config(folder: Path) -> Qwen2_5_VLVisionConfig:
    """The vision config of a Qwen2.5-VL checkpoint folder's config.json."""
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no config.json in {folder}: expected a local Hugging Face Qwen2.5-VL checkpoint "
            "folder (config.json + *.safetensors), e.g. Qwen2.5-VL-3B-Instruct"
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    vision = raw.get("vision_config")
    if not isinstance(vision, dict):
        raise ValueError(f"{path} has no vision_config: not a Qwen2.5-VL checkpoint")
    vision = dict(vision)
    if "out_hidden_size" not in vision:
        text_hidden = raw.get("hidden_size") or (raw.get("text_config") or {}).get("hidden_size")
        if text_hidden is None:
            raise ValueError(f"{path}: vision_config has no out_hidden_size and no text width")
        vision["out_hidden_size"] = int(text_hidden)
    return Qwen2_5_VLConfig(vision_config=vision).vision_config


def _vision_shards(folder: Path) -> list[Path]:
    """The safetensors files holding vision weights (from the index when there is one)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        names = sorted({f for key, f in weight_map.items() if key.startswith(VISUAL_PREFIXES)})
        if not names:
            raise ValueError(f"{index} lists no vision weights ('visual.*' / 'model.visual.*')")
        shards = [folder / name for name in names]
    else:
        shards = sorted(folder.glob("*.safetensors"))
        if not shards:
            raise FileNotFoundError(f"no *.safetensors weights in {folder}")
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"weight shards missing from {folder}: {', '.join(missing)}")
    return shards
