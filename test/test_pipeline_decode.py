from __future__ import annotations

import cv2
import numpy as np
import pytest

from fastdrive_ros.pipeline.decode import DecodeError, compressed_size, decode_frame
from fastdrive_ros.pipeline.fakes import jpeg_bytes, sample_image
from fastdrive_ros.pipeline.types import CameraFrameIn

MAX = 1 << 20


def _frame(data, encoding="jpeg", **kw) -> CameraFrameIn:
    return CameraFrameIn(channel="CAM_FRONT", stamp_ns=1, data=data, encoding=encoding, **kw)


def _reason(frame: CameraFrameIn, **kw) -> str:
    with pytest.raises(DecodeError) as info:
        decode_frame(frame, max_bytes=kw.pop("max_bytes", MAX), **kw)
    return info.value.reason


def test_jpeg_decodes_to_rgb_with_header_size() -> None:
    image = np.zeros((40, 64, 3), np.uint8)
    image[..., 0] = 250  # pure red in RGB
    data = jpeg_bytes(image, quality=95)
    assert compressed_size(data, "jpeg") == (64, 40)
    out = decode_frame(_frame(data), max_bytes=MAX)
    assert out.shape == (40, 64, 3) and out.dtype == np.uint8
    assert out[..., 0].mean() > 240 and out[..., 2].mean() < 15


def test_png_decodes_exactly() -> None:
    image = sample_image(50, 30, seed=3)
    ok, buf = cv2.imencode(".png", image[:, :, ::-1])
    assert ok
    data = buf.tobytes()
    assert compressed_size(data, "png") == (50, 30)
    np.testing.assert_array_equal(decode_frame(_frame(data, "png"), max_bytes=MAX), image)


@pytest.mark.parametrize("rgb_flag", [True, False])
def test_direct_rgb_decode_equals_bgr_decode_and_swap(rgb_flag: bool, monkeypatch) -> None:
    from fastdrive_ros.pipeline import decode

    if rgb_flag and decode._IMREAD_RGB is None:
        pytest.skip("this OpenCV has no IMREAD_COLOR_RGB")
    if not rgb_flag:  # an OpenCV older than 4.10
        monkeypatch.setattr(decode, "_IMREAD_RGB", None)
    image = sample_image(96, 54, seed=5)
    for data, encoding in ((jpeg_bytes(image, quality=80), "jpeg"), (_png(image), "png")):
        buffer = np.frombuffer(data, np.uint8)
        expected = cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out = decode_frame(_frame(buffer.copy(), encoding), max_bytes=MAX)  # as rosbags gives it
        np.testing.assert_array_equal(out, expected)


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_raw_encodings_with_row_padding(encoding: str) -> None:
    rgb = sample_image(7, 5, seed=1)
    if encoding == "mono8":
        pixels = rgb[:, :, :1]
        expected = np.repeat(pixels, 3, axis=2)
    else:
        order = rgb if encoding.startswith("rgb") else rgb[:, :, ::-1]
        alpha = np.full((5, 7, 1), 9, np.uint8)
        pixels = np.concatenate([order, alpha], axis=2) if encoding.endswith("a8") else order
        expected = rgb
    row = pixels.shape[1] * pixels.shape[2]
    step = row + 3  # padded rows, as some drivers send
    buf = np.zeros((5, step), np.uint8)
    buf[:, :row] = pixels.reshape(5, row)
    frame = _frame(buf.tobytes(), encoding, width=7, height=5, step=step)
    np.testing.assert_array_equal(decode_frame(frame, max_bytes=MAX), expected)


def test_bad_images_have_precise_reasons() -> None:
    good = jpeg_bytes(sample_image(64, 48))
    assert _reason(_frame(b"")) == "empty"
    assert _reason(_frame(good), max_bytes=100) == "oversized"
    assert _reason(_frame(good[: len(good) // 2])) == "truncated"
    assert _reason(_frame(good[:300])) in ("truncated", "corrupt")
    assert _reason(_frame(np.random.default_rng(0).bytes(5000))) == "corrupt"
    broken_marker = good[:2] + b"\x00\x00" + good[4:]  # segment structure destroyed
    assert _reason(_frame(broken_marker)) == "corrupt"
    assert _reason(_frame(good), expected=(32, 48)) == "resolution"
    assert _reason(_frame(good, "yuv422")) == "encoding"
    assert _reason(_frame(b"\x00" * 20, "rgb8", width=4, height=4)) == "size"
    assert _reason(_frame(b"\x00" * 48, "rgb8", width=0, height=4)) == "resolution"


def test_png_truncated_and_absurd_size_refused_before_decoding() -> None:
    ok, buf = cv2.imencode(".png", sample_image(40, 20))
    data = buf.tobytes()
    assert _reason(_frame(data[:-20], "png")) == "truncated"
    # a PNG header claiming 100000 x 100000 px: refused from the header, never allocated
    bomb = bytearray(data)
    bomb[16:24] = (100000).to_bytes(4, "big") * 2
    assert _reason(_frame(bytes(bomb), "png")) == "resolution"
