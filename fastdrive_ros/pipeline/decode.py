"""Camera image decoding with validation: bytes in, [H, W, 3] uint8 RGB out, or a DecodeError.

Everything a bad camera can send (empty, oversized, truncated or corrupt JPEG/PNG, a raw buffer of
the wrong length, an unknown encoding, an unexpected resolution) becomes a `DecodeError` with a
short reason code for the counters and a detail for the log, never another exception. The image
size is read from the JPEG/PNG header before decoding, so a wrong-size or absurdly large image is
refused without allocating its pixels.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from fastdrive_ros.pipeline.types import COMPRESSED_ENCODINGS, RAW_CHANNELS, CameraFrameIn

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
# SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MAX_PIXELS = 64_000_000  # ~8k x 8k: anything bigger is not a camera of this node
# OpenCV >= 4.10 decodes straight to RGB (the same pixels, one image copy less than BGR + swap).
_IMREAD_RGB: int | None = getattr(cv2, "IMREAD_COLOR_RGB", None)
# libjpeg scales by 1/2, 1/4, 1/8 in the DCT domain while decoding: a 1600x900 camera for a
# 504x280 model decodes at 800x450 in about half the time, and the resize has a quarter of the
# pixels to read. Only for JPEG (PNG has no such thing), only down to the model's size.
_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class DecodeError(ValueError):
    """An image that cannot be used; `reason` is a short code counted per camera."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def compressed_size(data: bytes, encoding: str) -> tuple[int, int]:
    """(width, height) from a JPEG SOF or PNG IHDR header, without decoding; DecodeError if bad."""
    if encoding == "png":
        if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
            raise DecodeError("corrupt", "not a PNG (bad signature or IHDR)")
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if not data.startswith(_JPEG_SOI):
        raise DecodeError("corrupt", "not a JPEG (no start-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise DecodeError("corrupt", f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise DecodeError("truncated", "JPEG ends before its frame header (SOF)")


def _check_size(width: int, height: int, expected: tuple[int, int] | None) -> None:
    if width <= 0 or height <= 0 or width * height > _MAX_PIXELS:
        raise DecodeError("resolution", f"implausible image size {width}x{height}")
    if expected is not None and (width, height) != tuple(expected):
        raise DecodeError(
            "resolution", f"image is {width}x{height}, expected {expected[0]}x{expected[1]}"
        )


def _as_bytes(data: bytes | np.ndarray) -> bytes | memoryview:
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data, dtype=np.uint8)).cast("B")
    return data


def reduction_for(source: tuple[int, int], target: tuple[int, int] | None) -> int:
    """The largest JPEG DCT scale factor (1, 2, 4, 8) that keeps (W, H) `source` >= `target`."""
    if target is None:
        return 1
    width, height = source
    for factor in (8, 4, 2):
        if -(-width // factor) >= target[0] and -(-height // factor) >= target[1]:
            return factor
    return 1


def source_size(frame: CameraFrameIn) -> tuple[int, int]:
    """(width, height) the camera sent (the JPEG/PNG header's, not a reduced decode's)."""
    if frame.encoding in COMPRESSED_ENCODINGS:
        return compressed_size(bytes(_as_bytes(frame.data)), frame.encoding)
    return frame.width, frame.height


def decode_compressed(
    data: bytes | memoryview,
    encoding: str,
    *,
    expected: tuple[int, int] | None,
    reduce_to: tuple[int, int] | None = None,
) -> np.ndarray:
    """JPEG/PNG bytes -> [H, W, 3] uint8 RGB; header, size and completeness checked first.

    `reduce_to` (W, H): a JPEG at least twice that size in both directions is decoded at 1/2,
    1/4 or 1/8 scale (reduction_for), never below it; `expected` is still the full size.
    """
    data = bytes(data)
    width, height = compressed_size(data, encoding)
    _check_size(width, height, expected)
    tail = data[-16:].rstrip(b"\x00")  # some encoders pad after EOI
    if encoding == "jpeg" and not tail.endswith(_JPEG_EOI):
        raise DecodeError("truncated", "JPEG has no end-of-image marker (cut off in transit?)")
    if encoding == "png" and not tail.endswith(_PNG_IEND):
        raise DecodeError("truncated", "PNG has no IEND chunk (cut off in transit?)")
    buffer = np.frombuffer(data, dtype=np.uint8)
    factor = reduction_for((width, height), reduce_to) if encoding == "jpeg" else 1
    flags = cv2.IMREAD_COLOR if factor == 1 else _REDUCED[factor]
    if _IMREAD_RGB is not None:
        flags |= _IMREAD_RGB
    height, width = -(-height // factor), -(-width // factor)
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:  # pragma: no cover - OpenCV raises only for absurd inputs
        raise DecodeError("corrupt", f"OpenCV could not decode the {encoding}: {exc}") from None
    if image is None:
        raise DecodeError("corrupt", f"OpenCV could not decode the {encoding} data")
    if image.shape[:2] != (height, width):
        raise DecodeError(
            "corrupt", f"decoded {image.shape[1]}x{image.shape[0]}, header said {width}x{height}"
        )
    return image if _IMREAD_RGB is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_raw(frame: CameraFrameIn, *, expected: tuple[int, int] | None) -> np.ndarray:
    """A raw rgb8/bgr8/rgba8/bgra8/mono8 buffer -> [H, W, 3] uint8 RGB (a copy, never a view)."""
    channels = RAW_CHANNELS[frame.encoding]
    width, height = frame.width, frame.height
    _check_size(width, height, expected)
    row = width * channels
    step = frame.step or row
    if step < row:
        raise DecodeError("size", f"row step {step} < width {width} x {channels} channels")
    flat = np.frombuffer(_as_bytes(frame.data), dtype=np.uint8)
    if flat.size < step * (height - 1) + row:
        raise DecodeError(
            "size",
            f"{frame.encoding} buffer has {flat.size} bytes, {width}x{height} needs "
            f"{step * height}",
        )
    rows = np.lib.stride_tricks.as_strided(flat, shape=(height, row), strides=(step, 1))
    pixels = rows.reshape(height, width, channels)
    if frame.encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if frame.encoding.startswith("bgr"):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def decode_frame(
    frame: CameraFrameIn,
    *,
    max_bytes: int,
    expected: tuple[int, int] | None = None,
    reduce_to: tuple[int, int] | None = None,
) -> np.ndarray:
    """Any CameraFrameIn -> [H, W, 3] uint8 RGB, or DecodeError naming what is wrong.

    `expected` (W, H) is the size the camera must send; `reduce_to` (W, H) lets a large JPEG
    decode at a DCT-domain fraction of it, not below (see decode_compressed).
    """
    size = frame.nbytes
    if size == 0:
        raise DecodeError("empty", "image has no data")
    if size > max_bytes:
        raise DecodeError("oversized", f"image has {size} bytes, max_image_bytes is {max_bytes}")
    if frame.encoding in COMPRESSED_ENCODINGS:
        return decode_compressed(
            _as_bytes(frame.data), frame.encoding, expected=expected, reduce_to=reduce_to
        )
    if frame.encoding in RAW_CHANNELS:
        return decode_raw(frame, expected=expected)
    raise DecodeError(
        "encoding",
        f"unsupported encoding {frame.encoding!r}; use one of "
        f"{sorted(COMPRESSED_ENCODINGS | set(RAW_CHANNELS))}",
    )
