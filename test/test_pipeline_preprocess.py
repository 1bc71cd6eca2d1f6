"""The node's fast path (issue 11): DCT-domain JPEG reduction and the fused preprocessing, checked
against the reference that training uses (nn.vision.preprocess_images)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.nn.vision import preprocess_images
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.decode import decode_frame, reduction_for
from fastdrive_ros.pipeline.fakes import (
    FakeBackend,
    FakePlanner,
    camera_frames,
    jpeg_bytes,
    sample_image,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.preprocess import FusedPreprocessor
from fastdrive_ros.pipeline.types import CameraFrameIn

SIZE = (280, 504)  # (H, W) of the shipped model


def _frame(data: bytes, channel: str = "CAM_FRONT") -> CameraFrameIn:
    return CameraFrameIn(channel=channel, stamp_ns=1, data=data, encoding="jpeg")


def test_reduction_keeps_at_least_the_model_size() -> None:
    assert reduction_for((1600, 900), (504, 280)) == 2  # 800x450; 1/4 would be 400x225
    assert reduction_for((640, 360), (504, 280)) == 1  # less than twice: decode in full
    assert reduction_for((4032, 2268), (504, 280)) == 8
    assert reduction_for((1600, 900), None) == 1


def test_a_large_jpeg_decodes_reduced_and_the_header_size_is_still_checked() -> None:
    data = jpeg_bytes(sample_image(1600, 900, seed=1))
    full = decode_frame(_frame(data), max_bytes=1 << 22)
    half = decode_frame(_frame(data), max_bytes=1 << 22, reduce_to=(504, 280))
    assert full.shape == (900, 1600, 3) and half.shape == (450, 800, 3)
    # what the model sees: reduced decode + fused path vs full decode + the reference, in
    # intensity levels (0..255). Sharp synthetic stripes (hard 255->0 wraps) are the worst case.
    for blur, mean_levels in ((0, 3.0), (3, 1.5)):
        image = sample_image(1600, 900, seed=1)
        if blur:
            image = cv2.GaussianBlur(image, (0, 0), blur)
        jpeg = jpeg_bytes(image)
        full = decode_frame(_frame(jpeg), max_bytes=1 << 22)
        half = decode_frame(_frame(jpeg), max_bytes=1 << 22, reduce_to=(504, 280))
        reference = preprocess_images(torch.from_numpy(full[None]), size=SIZE)
        fast = FusedPreprocessor(size=SIZE)(torch.from_numpy(half[None]))
        levels = (reference - fast).abs() * 255 * 0.2613  # normalised units -> levels
        assert levels.mean() < mean_levels, (blur, float(levels.mean()))
    with pytest.raises(ValueError, match="expected 1280x720"):
        decode_frame(_frame(data), max_bytes=1 << 22, expected=(1280, 720), reduce_to=(504, 280))


def test_fused_preprocessing_matches_the_reference_within_half_a_level() -> None:
    images = torch.from_numpy(np.stack([sample_image(640, 360, seed=s) for s in range(6)]))
    fused = FusedPreprocessor(size=SIZE)
    out = fused(images)
    reference = preprocess_images(images, size=SIZE)
    assert out.shape == reference.shape == (6, 3, *SIZE) and out.dtype == torch.float32
    diff = (out - reference).abs()
    # rounding the resized image to whole levels: <= 0.5 / 255 / min(std) = 0.0076 plus the
    # reference's own float error
    assert diff.max() < 0.02 and diff.mean() < 0.005
    again = fused(images)
    assert again.data_ptr() == out.data_ptr()  # the buffer is reused, no new frame-size tensor
    same = torch.from_numpy(np.stack([sample_image(504, 280, seed=s) for s in range(2)]))
    assert (
        FusedPreprocessor(size=SIZE)(same) - preprocess_images(same, size=SIZE)
    ).abs().max() < 1e-5


def test_pipeline_plans_1600x900_cameras_through_the_fast_path() -> None:
    """Six 1600x900 JPEGs: decoded at 800x450, preprocessed fused, planned; a side camera of
    another size is still refused on its header size."""
    clock = ManualClock()
    pipeline = FramePipeline(
        config=PipelineConfig(camera_period_ms=1e4),
        backend=FakeBackend(),
        planner=FakePlanner(),
        clock=clock,
        image_size=SIZE,
        keep_images=True,
    )
    big = jpeg_bytes(sample_image(1600, 900, seed=2))
    other = jpeg_bytes(sample_image(1280, 720, seed=2))
    for k, side in enumerate((big, other)):
        t = (1000 + 100 * k) * 1_000_000
        clock.set(t)
        for frame in camera_frames(t, camera_names=CAMERA_NAMES, data=big):
            if frame.channel == "CAM_BACK":
                frame = CameraFrameIn(**{**frame.__dict__, "data": side})
            pipeline.on_camera(frame)
        clock.advance(150_000_000)
        out = pipeline.step()
        assert out is not None and out.images is not None
        assert out.images.shape == (6, 450, 800, 3)
    assert out.cameras["CAM_BACK"].state == "reused"  # 1280x720 among 1600x900: refused
    assert pipeline.counters.get("decode_failed/resolution") == 1
