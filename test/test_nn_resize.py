"""Real-checkpoint resolutions: Impromptu-VLA's own input (default) and the paper's 1596x1596."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastdrive_ros.nn.resize import (
    budget_size,
    checkpoint_resolution,
    impromptu_size,
    resize_pixels,
    smart_resize,
)
from fastdrive_ros.nn.vision import ImagePreprocessor, preprocess_images

torch.set_num_threads(1)


def test_impromptu_sees_a_nuscenes_camera_at_672x392() -> None:
    # LLaMA-Factory: sqrt(262144 / (1600 * 900)) = 0.4267 -> int(682.67) x int(384.0)
    assert budget_size(900, 1600) == (384, 682)
    # Qwen smart-resize: round(384 / 28) = 14, round(682 / 28) = 24 -> 392 x 672
    assert smart_resize(384, 682) == (392, 672)
    assert impromptu_size(900, 1600) == (392, 672)
    own = checkpoint_resolution(None)
    assert own.image_size == (392, 672) and own.resize == "impromptu"
    assert (392 // 28) * (672 // 28) == 336  # tokens, ~0.26 MP
    paper = checkpoint_resolution("paper")
    assert paper.image_size == (1596, 1596) and (1596 // 28) ** 2 == 3249
    with pytest.raises(ValueError, match="checkpoint, paper"):
        checkpoint_resolution("square")


@pytest.mark.parametrize("hw", [(900, 1600), (384, 682), (50, 60), (3000, 4000), (28, 5000)])
def test_smart_resize_is_transformers(hw) -> None:
    pil = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    ours = smart_resize(*hw)
    theirs = pil.smart_resize(*hw, min_pixels=56 * 56, max_pixels=12845056)
    assert ours == tuple(theirs)


def _camera() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(9, 16, 3), dtype=np.uint8)
    image = np.kron(base, np.ones((100, 100, 1), dtype=np.uint8))  # 900 x 1600, sharp edges
    return np.clip(image.astype(np.int16) + rng.integers(-20, 20, image.shape), 0, 255).astype(
        np.uint8
    )


def test_impromptu_resampling_is_nearest_then_qwens_bicubic_as_pil() -> None:
    image = _camera()
    pil = Image.fromarray(image).resize((682, 384), resample=Image.Resampling.NEAREST)
    pil = pil.resize((672, 392), resample=Image.Resampling.BICUBIC)
    expected = torch.from_numpy(np.asarray(pil).astype(np.float32)).permute(2, 0, 1)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    ours = resize_pixels(x, (392, 672), "impromptu")[0]
    # PIL's fixed-point filter weights round a few pixels the other way
    difference = (ours - expected).abs()
    assert float(difference.max()) <= 1.0 and float(difference.mean()) < 0.01
    step = resize_pixels(x, (384, 682), "impromptu")[0]  # the nearest step alone
    pil_step = Image.fromarray(image).resize((682, 384), resample=Image.Resampling.NEAREST)
    np.testing.assert_array_equal(step.permute(1, 2, 0).numpy(), np.asarray(pil_step))


def test_preprocessing_follows_the_mode_and_the_stream_matches() -> None:
    frames = torch.from_numpy(_camera())[None]
    bilinear = preprocess_images(frames, size=(392, 672))
    impromptu = preprocess_images(frames, size=(392, 672), resize="impromptu")
    bicubic = preprocess_images(frames, size=(392, 672), resize="bicubic")
    assert not torch.allclose(bilinear, impromptu) and not torch.allclose(bicubic, impromptu)
    stream = ImagePreprocessor(size=(392, 672), resize="impromptu")
    torch.testing.assert_close(stream(frames), impromptu, rtol=0, atol=0)
    with pytest.raises(ValueError, match="resize must be one of"):
        preprocess_images(frames, size=(392, 672), resize="lanczos")


def test_the_bundle_config_carries_and_checks_the_mode(tmp_path) -> None:
    from dataclasses import replace

    from fastdrive_ros.nn.configs import tiny_config
    from fastdrive_ros.nn.vla import VLAConfig

    config = tiny_config(cameras=1, head="text", pruner=False)
    assert config.resize == "bilinear"  # the compact default's training preprocessing
    bicubic = replace(config, resize="bicubic")
    assert VLAConfig.from_json(bicubic.to_json()).resize == "bicubic"
    with pytest.raises(ValueError, match="resize must be one of"):
        replace(config, resize="lanczos")
