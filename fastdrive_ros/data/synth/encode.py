"""Camera-like finishing of rendered images and deterministic encoding of images and masks.

Each image gets its own exposure gain, white balance, black level and sensor noise (drawn from
its own seeded stream), so no two frames are pixel-identical and a network cannot memorise them.
JPEG quality and PNG settings are fixed: the same seed gives byte-identical files.

Masks and class maps are written as standard 8-bit grayscale PNGs by `png_gray8` (filter type 0,
zlib level 1): libpng's adaptive row filtering, which OpenCV and Pillow cannot switch off, costs
about four times more than the compression itself on label images and gains nothing there.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from fastdrive_ros.data.layout import FOREGROUND_IDS

JPEG_QUALITY = 90
PNG_LEVEL = 1
NOISE_MARGIN = 64
_NOISE: dict[tuple[int, int], np.ndarray] = {}
FG_LUT = np.array([255 if i in FOREGROUND_IDS else 0 for i in range(256)], np.uint8)


def _noise(width: int, height: int) -> np.ndarray:
    if (width, height) not in _NOISE:
        rng = np.random.default_rng(90210)
        shape = (height + NOISE_MARGIN, width + NOISE_MARGIN, 3)
        _NOISE[(width, height)] = np.round(rng.normal(0.0, 2.2, shape)).astype(np.int16)
    return _NOISE[(width, height)]


def finish(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 RGB with per-image exposure, white balance, offset and noise."""
    h, w = rgb.shape[:2]
    gain = rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)
    matrix = np.zeros((3, 4), np.float32)
    matrix[[0, 1, 2], [0, 1, 2]] = gain
    matrix[:, 3] = rng.uniform(-6.0, 6.0)
    out = cv2.transform(rgb, matrix)
    oy, ox = (int(v) for v in rng.integers(0, NOISE_MARGIN, 2))
    noise = _noise(w, h)[oy : oy + h, ox : ox + w]
    return cv2.add(out, noise, dtype=cv2.CV_8U)


def write_jpeg(path: Path, rgb: np.ndarray) -> int:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.write_bytes(buf.tobytes())
    return len(buf)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_gray8(image: np.ndarray) -> bytes:
    """PNG bytes of a (H, W) uint8 image: 8-bit grayscale, no interlace, filter 0 on every row."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"png_gray8 needs a (H, W) uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape
    rows = np.zeros((h, w + 1), np.uint8)  # each row starts with its filter byte (0 = none)
    rows[:, 1:] = image
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_LEVEL))
        + _chunk(b"IEND", b"")
    )


def write_png(path: Path, image: np.ndarray) -> int:
    data = png_gray8(image)
    path.write_bytes(data)
    return len(data)


def foreground_mask(cls: np.ndarray) -> np.ndarray:
    """uint8 nuScenes-FG mask (255 = foreground) of a class map."""
    return cv2.LUT(cls, FG_LUT)
