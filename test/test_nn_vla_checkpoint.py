"""Loading a Qwen2.5-VL / Impromptu-VLA Hugging Face checkpoint folder (4.x and 5.x layouts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hf_tiny import write_hf_checkpoint as _write
from transformers import Qwen2_5_VLForConditionalGeneration

from fastdrive_ros.core_types import CAMERA_NAMES, EgoState, PlanFailure
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.vla import VLA

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def source() -> VLA:
    return VLA.build(tiny_config(cameras=1, head="text", pruner=False), seed=5)


def _ego() -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([3.0 * t, 0 * t], axis=1),
        speed=3.0,
        acceleration=0.0,
        yaw_rate=0.0,
        steering=0.0,
    )


@pytest.mark.parametrize("layout", ["4.x", "5.x"])
def test_loads_both_weight_layouts(source, tmp_path, layout) -> None:
    folder = tmp_path / "ckpt"
    _write(source, folder, layout)
    vla = VLA.from_pretrained(folder, image_size=(56, 84), camera_names=CAMERA_NAMES[:1])
    assert vla.config.prompt_style == "impromptu" and vla.config.head == "text"
    assert vla.pruner is None
    for key, value in source.planner.state_dict().items():
        torch.testing.assert_close(vla.planner.state_dict()[key], value, rtol=0, atol=0)
    pixels = torch.randn(1, 3, 56, 84)
    torch.testing.assert_close(vla.vision(pixels).tokens, source.vision(pixels).tokens)
    result, selection, _ = vla.plan_frame(pixels, _ego(), selector_name="none", max_new_tokens=6)
    assert isinstance(result, PlanFailure)  # random weights: garbage text, typed
    assert selection.kept_index.numel() == 6


def test_same_weights_as_transformers_own_loader(source, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    _write(source, folder, "4.x")
    ours = VLA.from_pretrained(folder, image_size=(56, 84))
    theirs = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)  # float32 config
    text_model = getattr(theirs.model, "language_model", theirs.model)
    for key, value in text_model.state_dict().items():
        torch.testing.assert_close(ours.planner.model.state_dict()[key], value, rtol=0, atol=0)
    torch.testing.assert_close(ours.planner.lm_head.weight, theirs.lm_head.weight)


def test_default_checkpoint_geometry_is_its_own_and_the_paper_is_a_setting(
    source, tmp_path
) -> None:
    folder = tmp_path / "ckpt"
    _write(source, folder, "4.x")
    vla = VLA.from_pretrained(folder)  # Impromptu-VLA's fine-tuning input (nn/resize.py)
    assert vla.config.image_size == (392, 672) and vla.config.camera_names == ("CAM_FRONT",)
    assert vla.config.resize == "impromptu" and vla.config.tokens_per_camera == 336
    paper = VLA.from_pretrained(folder, resolution="paper")
    assert paper.config.image_size == (1596, 1596) and paper.config.resize == "bicubic"
    assert paper.config.tokens_per_camera == 3249
    sized = VLA.from_pretrained(folder, resolution="paper", image_size=(56, 84))
    assert sized.config.image_size == (56, 84) and sized.config.resize == "bicubic"
    with pytest.raises(ValueError, match="unknown checkpoint resolution"):
        VLA.from_pretrained(folder, resolution="square")
    bundle = tmp_path / "bundle"
    source.save_pretrained(bundle)
    with pytest.raises(ValueError, match="for real checkpoints"):
        VLA.from_pretrained(bundle, resolution="paper")


def test_broken_checkpoints_name_the_file(source, tmp_path) -> None:
    folder = tmp_path / "ckpt"
    _write(source, folder, "4.x")
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002"):
        VLA.from_pretrained(folder, image_size=(56, 84))
    _write(source, tmp_path / "b", "4.x")
    (tmp_path / "b" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        VLA.from_pretrained(tmp_path / "b", image_size=(56, 84))
    _write(source, tmp_path / "c", "4.x")
    shard = tmp_path / "c" / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:500])
    with pytest.raises(ValueError, match="model-00002-of-00002.safetensors"):
        VLA.from_pretrained(tmp_path / "c", image_size=(56, 84))
