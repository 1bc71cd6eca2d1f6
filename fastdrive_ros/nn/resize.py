"""How camera images are resized for the vision tower, and the resolutions real checkpoints use.

Three resampling modes (all in torch, no PIL; images are float 0..255 in [C, 3, H, W]):

- "bilinear": antialiased bilinear straight to the model size (the compact default was trained so).
- "bicubic": antialiased bicubic, what Qwen2-VL's image processor does (PIL BICUBIC, or
  torchvision's antialiased bicubic in its fast processor).
- "impromptu": what Impromptu-VLA's fine-tuning pipeline (LLaMA-Factory, `image_resolution:
  262144` in its training yaml) fed the model: a nearest-neighbour downscale to at most
  262144 px keeping the aspect ratio (int() of each side), then Qwen's processor: bicubic to
  the smart-resize size (multiples of 28). A 1600x900 nuScenes camera becomes 682x384, then
  672x392: 24 x 14 = 336 tokens, about 0.26 MP.

The checkpoint's own resolution is the default for real-checkpoint runs; the FastDriveVLA paper's
1596x1596 (57 x 57 = 3249 tokens, stretched, bicubic) is the setting that reproduces its counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

ResizeMode = Literal["bilinear", "bicubic", "impromptu"]
RESIZE_MODES: tuple[str, ...] = ("bilinear", "bicubic", "impromptu")

# Impromptu-VLA's LLaMA-Factory training yaml (train/Qwen2_5-VL/example/3B_*.yaml).
IMPROMPTU_IMAGE_RESOLUTION = 262144
# Qwen2.5-VL's preprocessor_config.json (min_pixels 3136, max_pixels 12845056); factor 28. A
# 262144-px image is far inside either bound (transformers' own default max is 1003520).
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384
NUSCENES_CAMERA_HW = (900, 1600)


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = 28,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Qwen2-VL's smart_resize: sides to multiples of `factor`, pixels within the bounds."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of {height}x{width} is above Qwen's limit of 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


def budget_size(
    height: int, width: int, max_pixels: int = IMPROMPTU_IMAGE_RESOLUTION
) -> tuple[int, int]:
    """LLaMA-Factory's _preprocess_image size: scale to <= max_pixels, int() of each side."""
    if height * width <= max_pixels:
        return int(height), int(width)
    scale = math.sqrt(max_pixels / (height * width))
    return int(height * scale), int(width * scale)


def impromptu_size(height: int, width: int) -> tuple[int, int]:
    """The (H, W) Impromptu-VLA saw for a camera of height x width (900x1600 -> 392x672)."""
    return smart_resize(*budget_size(height, width))


@dataclass(frozen=True)
class Resolution:
    """A named input resolution for real checkpoints: size (H, W) and resampling mode."""

    name: str
    image_size: tuple[int, int]
    resize: ResizeMode
    note: str


CHECKPOINT_RESOLUTIONS: dict[str, Resolution] = {
    "checkpoint": Resolution(
        "checkpoint",
        impromptu_size(*NUSCENES_CAMERA_HW),
        "impromptu",
        "Impromptu-VLA's own fine-tuning input: 1600x900 -> nearest to 682x384 (<= 262144 px) "
        "-> Qwen bicubic smart-resize to 672x392, 336 tokens",
    ),
    "paper": Resolution(
        "paper",
        (1596, 1596),
        "bicubic",
        "FastDriveVLA's setting: stretched to 1596x1596 with Qwen's bicubic resize, 3249 tokens",
    ),
}
DEFAULT_CHECKPOINT_RESOLUTION = "checkpoint"


def checkpoint_resolution(name: str | None) -> Resolution:
    """The named resolution (None: the checkpoint's own), or ValueError naming the choices."""
    key = DEFAULT_CHECKPOINT_RESOLUTION if name is None else name
    if key not in CHECKPOINT_RESOLUTIONS:
        raise ValueError(
            f"unknown checkpoint resolution {name!r}: choose one of "
            f"{', '.join(CHECKPOINT_RESOLUTIONS)}"
        )
    return CHECKPOINT_RESOLUTIONS[key]


def check_mode(mode: str) -> ResizeMode:
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def resize_pixels(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """[C, 3, H0, W0] float 0..255 -> [C, 3, H, W] by `mode` (x itself when nothing changes).

    Bicubic modes reproduce PIL's 8-bit passes (rounded, clipped); bilinear stays float.
    """
    check_mode(mode)
    if mode == "impromptu":
        step = budget_size(int(x.shape[-2]), int(x.shape[-1]))
        if tuple(x.shape[-2:]) != step:
            rows = _pil_nearest_index(int(x.shape[-2]), step[0], x.device)
            cols = _pil_nearest_index(int(x.shape[-1]), step[1], x.device)
            x = x.index_select(-2, rows).index_select(-1, cols)
        mode = "bicubic"
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "bicubic":
        return _pil_bicubic(x, (int(size[0]), int(size[1])))
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False, antialias=True)


def _pil_bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL's BICUBIC resize, what Qwen's image processor runs.

    Antialiased bicubic (a = -0.5), horizontal pass first, each pass rounded and clipped to
    0..255 as PIL's 8-bit image is.

    One float pass differs from PIL by up to ~10 levels at sharp edges (PIL clips the
    intermediate); these two passes match it within 1 level.
    """
    height, width = size
    if x.shape[-1] != width:
        x = (
            F.interpolate(
                x,
                size=(int(x.shape[-2]), width),
                mode="bicubic",
                align_corners=False,
                antialias=True,
            )
            .round_()
            .clamp_(0.0, 255.0)
        )
    if x.shape[-2] != height:
        x = (
            F.interpolate(
                x, size=(height, width), mode="bicubic", align_corners=False, antialias=True
            )
            .round_()
            .clamp_(0.0, 255.0)
        )
    return x


def _pil_nearest_index(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """Source index of each output pixel as PIL's NEAREST resize picks it (ImagingScaleAffine).

    PIL walks pixel centres by adding the scale in double precision, x = 0.5 s, 1.5 s, ...,
    and truncates; torch's nearest-exact computes (i + 0.5) s in float32, which rounds the other
    way where (i + 0.5) s is an integer (1600 -> 682: column 170 reads 399, PIL reads 400).
    """
    scale = n_in / n_out
    position = scale * 0.5
    index = []
    for _ in range(n_out):
        index.append(min(int(position), n_in - 1))
        position += scale
    return torch.tensor(index, dtype=torch.long, device=device)
