"""Vision encoder: preprocessing, patch order, stock-tower forward and checkpoint loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

from fastdrive_ros.nn.selection import VisualTokens
from fastdrive_ros.nn.vision import (
    QWEN_MEAN,
    QWEN_STD,
    ImagePreprocessor,
    VisionEncoder,
    apply_vision_rotary,
    merged_window_order,
    normalize_images,
    patchify,
    preprocess_images,
    vision_inv_freq,
    vision_position_ids,
    vision_rotary,
)

torch.set_num_threads(2)


def tiny_config(**overrides) -> Qwen2_5_VLVisionConfig:
    values = dict(
        depth=4,
        hidden_size=64,
        intermediate_size=128,
        num_heads=2,
        out_hidden_size=96,
        fullatt_block_indexes=[1, 3],
    )
    values.update(overrides)
    return Qwen2_5_VLVisionConfig(**values)


@pytest.fixture(scope="module")
def encoder() -> VisionEncoder:
    torch.manual_seed(0)
    return VisionEncoder(config=tiny_config()).eval()


def test_normalize_uint8_and_float_agree() -> None:
    images = torch.randint(0, 256, (2, 8, 10, 3), dtype=torch.uint8)
    from_uint8 = normalize_images(images)
    from_float = normalize_images(images.permute(0, 3, 1, 2).float() / 255.0)
    assert from_uint8.shape == (2, 3, 8, 10)
    torch.testing.assert_close(from_uint8, from_float)
    pixel = images[1, 4, 5].float() / 255.0
    expected = (pixel - torch.tensor(QWEN_MEAN)) / torch.tensor(QWEN_STD)
    torch.testing.assert_close(from_uint8[1, :, 4, 5], expected)


def test_normalize_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError, match=r"\[C, H, W, 3\]"):
        normalize_images(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[C, 3, H, W\]"):
        normalize_images(torch.zeros(2, 8, 8, 3))


def test_preprocess_resizes_with_antialias_and_normalises() -> None:
    images = torch.randint(0, 256, (3, 90, 160, 3), dtype=torch.uint8)
    out = preprocess_images(images, size=(56, 84))
    assert out.shape == (3, 3, 56, 84) and out.dtype == torch.float32
    resized = F.interpolate(
        images.permute(0, 3, 1, 2).float(), size=(56, 84), mode="bilinear", antialias=True
    )
    torch.testing.assert_close(out, normalize_images(resized / 255.0))
    # a constant image stays that constant after resizing
    flat = torch.full((1, 90, 160, 3), 200, dtype=torch.uint8)
    expected = (200 / 255.0 - torch.tensor(QWEN_MEAN)) / torch.tensor(QWEN_STD)
    got = preprocess_images(flat, size=(28, 56))[0, :, 10, 20]
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("size", [(56, 84), (90, 160)])
def test_preprocess_in_place_normalisation_is_bit_exact(size) -> None:
    images = torch.randint(0, 256, (2, 90, 160, 3), dtype=torch.uint8)
    before = images.clone()
    x = images.permute(0, 3, 1, 2).to(torch.float32)
    if size != (90, 160):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    reference = normalize_images(x.clamp(0.0, 255.0) / 255.0)  # the out-of-place formula
    out = preprocess_images(images, size=size)
    assert torch.equal(out, reference)
    assert torch.equal(images, before)  # the caller's frame is never written


def test_image_preprocessor_reuses_its_buffer_and_matches_preprocess() -> None:
    prep = ImagePreprocessor(size=(56, 84))
    frames = [torch.randint(0, 256, (2, 90, 160, 3), dtype=torch.uint8) for _ in range(2)]
    first = prep(frames[0])
    buffer = prep._scratch
    second = prep(frames[1])
    assert prep._scratch is buffer  # same frame size: the float image is not reallocated
    assert torch.equal(first, preprocess_images(frames[0], size=(56, 84)))  # not overwritten
    assert torch.equal(second, preprocess_images(frames[1], size=(56, 84)))
    other = torch.randint(0, 256, (2, 60, 100, 3), dtype=torch.uint8)  # cameras changed size
    assert torch.equal(prep(other), preprocess_images(other, size=(56, 84)))
    assert prep._scratch.shape == (2, 3, 60, 100)
    same = torch.randint(0, 256, (2, 56, 84, 3), dtype=torch.uint8)  # already the model size
    assert torch.equal(prep(same), preprocess_images(same, size=(56, 84)))
    with pytest.raises(ValueError, match="uint8"):
        prep(torch.zeros(1, 28, 28, 3))
    with pytest.raises(ValueError, match="positive"):
        ImagePreprocessor(size=(0, 84))


def test_preprocess_rejects_float_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess_images(torch.zeros(1, 28, 28, 3), size=(28, 28))


def test_patchify_matches_the_hf_processor() -> None:
    try:  # transformers 5 (no torchvision needed)
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil as Processor,
        )
    except ImportError:  # transformers 4.x: the numpy processor
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
            Qwen2VLImageProcessor as Processor,
        )

    pixels = torch.randn(2, 3, 56, 84)
    flat, grid = patchify(pixels)
    processor = Processor()
    ref = processor(
        images=[p.numpy() for p in pixels],
        do_resize=False,
        do_rescale=False,
        do_normalize=False,
        return_tensors="pt",
    )
    assert grid.tolist() == ref["image_grid_thw"].tolist() == [[1, 4, 6], [1, 4, 6]]
    torch.testing.assert_close(flat, ref["pixel_values"].float(), rtol=0, atol=0)


def test_patchify_rejects_sizes_off_the_merge_grid() -> None:
    with pytest.raises(ValueError, match="multiple of 28"):
        patchify(torch.zeros(1, 3, 56, 70))


def test_forward_returns_tokens_and_grid(encoder: VisionEncoder) -> None:
    pixels = torch.randn(3, 3, 112, 196)
    with torch.no_grad():
        visual = encoder(pixels)
    assert isinstance(visual, VisualTokens)
    assert encoder.out_dim == 96 and encoder.patch_size == 14 and encoder.merge_size == 2
    assert visual.tokens.shape == (3 * 4 * 7, 96)
    assert visual.grid_thw.tolist() == [[1, 8, 14]] * 3
    assert visual.tokens_per_camera == [28, 28, 28]
    assert visual.aux == {}
    # cameras are independent images: a camera's tokens do not depend on the others
    with torch.no_grad():
        alone = encoder(pixels[1:2]).tokens
    torch.testing.assert_close(alone, visual.tokens[28:56], atol=1e-5, rtol=1e-5)


def test_attention_received_is_a_distribution_per_camera(encoder: VisionEncoder) -> None:
    pixels = torch.randn(2, 3, 140, 252)
    with torch.no_grad():
        visual = encoder(pixels, return_attention=True)
        plain = encoder(pixels)
    received = visual.aux["attention_received"]
    assert received.shape == (90,) and bool((received > 0).all())
    # each camera's patches receive 1 in total; merged tokens average their 4 patches
    per_camera = received.view(2, 45).sum(dim=1) * 4
    torch.testing.assert_close(per_camera, torch.ones(2))
    torch.testing.assert_close(visual.tokens, plain.tokens)  # the hook changes nothing


def test_attention_received_matches_explicit_softmax() -> None:
    """One full-attention block on one camera: compare with softmax(QK^T) written out."""
    torch.manual_seed(1)
    encoder = VisionEncoder(config=tiny_config(depth=1, fullatt_block_indexes=[0])).eval()
    tower = encoder.tower
    pixels = torch.randn(1, 3, 56, 84)
    flat, grid = patchify(pixels)
    with torch.no_grad():
        got = encoder(pixels, return_attention=True).aux["attention_received"]
        h = tower.patch_embed(flat)  # processor order (full attention: order is irrelevant)
        cos, sin = vision_rotary(tower.rotary_pos_emb.inv_freq, vision_position_ids(4, 6, 2))
        attn = tower.blocks[0].attn
        x = tower.blocks[0].norm1(h)
        q, k, _ = attn.qkv(x).reshape(x.shape[0], 3, 2, -1).unbind(1)  # [S, heads, hd]
        q, k = apply_vision_rotary(q, k, cos, sin)
        probs = torch.softmax(
            torch.einsum("qhd,khd->hqk", q, k) * 32**-0.5,
            dim=-1,  # head dim 64 / 2 heads
        )  # [heads, S, S]
        per_patch = probs.mean(dim=(0, 1))
        expected = per_patch.view(-1, 4).mean(dim=1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_window_order_matches_the_stock_tower() -> None:
    """Our window order equals the tower's own (transformers 4.x method or 5.x function)."""
    grid = torch.tensor([[1, 10, 18]])  # 5x9 merged tokens: partial windows both ways
    try:
        from transformers.vision_utils import get_vision_window_index

        stock, _ = get_vision_window_index(
            grid, spatial_merge_size=2, window_size=112, patch_size=14
        )
    except ImportError:  # transformers 4.x
        stock, _ = VisionEncoder(config=tiny_config()).tower.get_window_index(grid)
    assert merged_window_order(5, 9, 4).tolist() == stock.tolist()


def test_rotary_frequencies_stay_float32(encoder: VisionEncoder) -> None:
    """Our frequencies equal the tower's; casting the encoder must not round them."""
    buffer = encoder.tower.rotary_pos_emb.inv_freq
    torch.testing.assert_close(vision_inv_freq(encoder.config), buffer, rtol=0, atol=0)
    half = VisionEncoder(config=tiny_config())
    half.load_state_dict(encoder.state_dict())
    half = half.to(torch.bfloat16).eval()
    pixels = torch.randn(1, 3, 56, 84)
    with torch.no_grad():
        tokens = half(pixels).tokens
        twin = half.exportable((56, 84))(pixels)
    assert half.tower.rotary_pos_emb.inv_freq.dtype == torch.float32
    assert tokens.dtype == torch.bfloat16
    torch.testing.assert_close(twin.reshape(-1, 96), tokens, atol=3e-2, rtol=3e-2)


def _save_checkpoint(folder, encoder: VisionEncoder, prefix: str, shards: int) -> None:
    from safetensors.torch import save_file

    state = {prefix + k: v.contiguous() for k, v in encoder.tower.state_dict().items()}
    state["lm_head.weight"] = torch.zeros(4, 4)  # non-vision weights must be ignored
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    if shards > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    vision = encoder.config.to_dict()
    vision.pop("out_hidden_size")  # old configs: the text width says it
    config = {"model_type": "qwen2_5_vl", "hidden_size": 96, "vision_config": vision}
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("prefix,shards", [("visual.", 1), ("model.visual.", 3)])
def test_from_pretrained_reads_only_vision_weights(
    tmp_path, encoder: VisionEncoder, prefix: str, shards: int
) -> None:
    _save_checkpoint(tmp_path, encoder, prefix, shards)
    loaded = VisionEncoder.from_pretrained(tmp_path)
    assert loaded.out_dim == 96
    assert list(loaded.config.fullatt_block_indexes) == [1, 3]
    pixels = torch.randn(2, 3, 56, 84)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixels).tokens, encoder(pixels).tokens)
    half = VisionEncoder.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16


def test_from_pretrained_reads_a_transformers_checkpoint(tmp_path) -> None:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    # the flat config.json layout real checkpoints ship: transformers 4.x and 5.x both read it
    config = Qwen2_5_VLConfig.from_dict(
        {
            "model_type": "qwen2_5_vl",
            "vision_config": dict(
                depth=2,
                hidden_size=32,
                intermediate_size=64,
                num_heads=2,
                out_hidden_size=48,
                fullatt_block_indexes=[1],
            ),
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "vocab_size": 300,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 2, 8]},
        }
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    loaded = VisionEncoder.from_pretrained(tmp_path)
    pixels = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        tower = model.model.visual if hasattr(model.model, "visual") else model.visual  # 4.49
        ref = tower(*patchify(pixels))
        ref = ref if isinstance(ref, torch.Tensor) else ref.pooler_output
        torch.testing.assert_close(loaded(pixels).tokens, ref)


def test_from_pretrained_errors_name_the_problem(tmp_path, encoder: VisionEncoder) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        VisionEncoder.from_pretrained(tmp_path)
    _save_checkpoint(tmp_path, encoder, "model.visual.", 3)
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00003"):
        VisionEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(ValueError, match="vision_config"):
        VisionEncoder.from_pretrained(tmp_path)


def test_from_pretrained_rejects_weights_of_another_shape(tmp_path) -> None:
    small = VisionEncoder(config=tiny_config(depth=2, fullatt_block_indexes=[1]))
    _save_checkpoint(tmp_path, small, "visual.", 1)
    config = json.loads((tmp_path / "config.json").read_text())
    config["vision_config"]["depth"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing"):
        VisionEncoder.from_pretrained(tmp_path)


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="fullatt_block_indexes"):
        VisionEncoder(config=tiny_config(depth=2, fullatt_block_indexes=[5]))
    with pytest.raises(TypeError):
        VisionEncoder(config={"depth": 2})  # type: ignore[arg-type]
    assert np.isclose(sum(QWEN_MEAN), 1.34749289)
