"""Camera images, foreground masks and class maps at the model's input size, and token targets.

Pixels go through `nn.vision.preprocess_images` (THE preprocessing the node uses); masks and class
maps are resized with nearest-neighbour so class ids stay ids. One merged visual token covers a
`unit` x `unit` pixel cell (28 px for Qwen2.5-VL), cells in raster order like the tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from fastdrive_ros.data.layout import SEMANTIC_CLASSES

NUM_CLASSES = len(SEMANTIC_CLASSES)


def read_rgb(path: str) -> np.ndarray:
    """[H, W, 3] uint8 RGB; a missing or corrupt file raises FileNotFoundError naming it."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read camera image {path} (missing or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: str | None, size: tuple[int, int], *, what: str) -> np.ndarray:
    """[H, W] uint8 label PNG (mask or class map) resized (nearest) to size = (H, W)."""
    if path is None:
        raise FileNotFoundError(
            f"no {what} for this image: build them with `fastdrive masks` (real nuScenes) or use "
            "the synthetic world, which writes them"
        )
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise FileNotFoundError(f"cannot read {what} {path} (missing or corrupt)")
    if label.ndim == 3:
        label = label[..., 0]
    height, width = size
    if label.shape != (height, width):
        label = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    return label


def load_pixels(
    paths: Sequence[str], size: tuple[int, int], resize: str = "bilinear"
) -> torch.Tensor:
    """[C, 3, H, W] normalised float32 pixels of the images at `paths` (shared preprocessing).

    `resize` is the model's resampling (VLAConfig.resize; nn/resize.py).
    """
    from fastdrive_ros.nn.vision import preprocess_images

    images = [read_rgb(p) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) == 1:
        batch = torch.from_numpy(np.stack(images))
        return preprocess_images(batch, size=size, resize=resize)
    return torch.cat(
        [preprocess_images(torch.from_numpy(im)[None], size=size, resize=resize) for im in images]
    )


def denormalize(pixels: torch.Tensor) -> torch.Tensor:
    """Normalised [..., 3, H, W] -> RGB in 0..1: what the model saw (reconstruction targets)."""
    from fastdrive_ros.nn.vision import QWEN_MEAN, QWEN_STD

    mean = torch.tensor(QWEN_MEAN, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(QWEN_STD, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels * std + mean).clamp(0.0, 1.0)


def cell_fraction(mask: np.ndarray, unit: int) -> np.ndarray:
    """[H, W] 0/1 (or 0/255) mask -> [(H/unit) * (W/unit)] foreground share per token cell."""
    height, width = mask.shape
    if height % unit or width % unit:
        raise ValueError(f"mask {height}x{width} is not a multiple of the {unit}-px token cell")
    fg = (mask > 0).astype(np.float32)
    return fg.reshape(height // unit, unit, width // unit, unit).mean(axis=(1, 3)).reshape(-1)


def class_histograms(class_map: np.ndarray, unit: int) -> np.ndarray:
    """[H, W] class ids -> [n, NUM_CLASSES] share of each class per token cell (rows sum to 1)."""
    height, width = class_map.shape
    if height % unit or width % unit:
        raise ValueError(f"class map {height}x{width} is not a multiple of the {unit}-px cell")
    if class_map.size and int(class_map.max()) >= NUM_CLASSES:
        raise ValueError(
            f"class map holds id {int(class_map.max())}, outside SEMANTIC_CLASSES (0.."
            f"{NUM_CLASSES - 1})"
        )
    gh, gw = height // unit, width // unit
    rows = np.arange(height) // unit
    cols = np.arange(width) // unit
    cell = (rows[:, None] * gw + cols[None, :]).reshape(-1)
    counts = np.bincount(
        cell * NUM_CLASSES + class_map.reshape(-1).astype(np.int64),
        minlength=gh * gw * NUM_CLASSES,
    ).reshape(gh * gw, NUM_CLASSES)
    return (counts / float(unit * unit)).astype(np.float32)


def cell_colours(rgb01: torch.Tensor, unit: int) -> torch.Tensor:
    """[3, H, W] RGB in 0..1 -> [n, 12]: mean colour of the 2x2 half-cells of each token cell.

    A cheap pixel target that keeps colour (traffic-light state) and coarse layout in the tokens.
    """
    channels, height, width = rgb01.shape
    half = unit // 2
    pooled = torch.nn.functional.avg_pool2d(rgb01[None], kernel_size=half)[0]  # [3, 2gh, 2gw]
    gh, gw = height // unit, width // unit
    pooled = pooled.view(channels, gh, 2, gw, 2).permute(1, 3, 2, 4, 0)  # [gh, gw, 2, 2, 3]
    return pooled.reshape(gh * gw, 4 * channels)


def cell_depth(inverse_depth: np.ndarray, unit: int) -> np.ndarray:
    """[H, W] uint8 inverse-depth map -> [n, 2]: mean and max inverse depth per cell (0..1).

    The mean says how far the cell's surface is; the max keeps a near object that covers only
    part of the cell (the lead vehicle's bumper in a cell of road), which is what braking needs.
    """
    height, width = inverse_depth.shape
    if height % unit or width % unit:
        raise ValueError(f"depth map {height}x{width} is not a multiple of the {unit}-px cell")
    cells = (inverse_depth.astype(np.float32) / 255.0).reshape(
        height // unit, unit, width // unit, unit
    )
    return np.stack([cells.mean(axis=(1, 3)), cells.max(axis=(1, 3))], axis=-1).reshape(-1, 2)
