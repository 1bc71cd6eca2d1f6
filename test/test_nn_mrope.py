"""M-RoPE ids of text + image prompts, checked against transformers' own get_rope_index."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import Qwen2_5_VLConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLModel,
)

from fastdrive_ros.nn.mrope import (
    ImageSegment,
    TextSegment,
    kept_positions,
    mrope_position_ids,
    next_position,
)

IMAGE, START, END = 7, 5, 6


def _tiny_model():
    """The class holding get_rope_index: Qwen2_5_VLModel (>= 4.52) or the generation model."""
    config = Qwen2_5_VLConfig.from_dict(  # flat, as checkpoints ship it: any version reads it
        {
            "model_type": "qwen2_5_vl",
            "vocab_size": 16,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
            "bos_token_id": 0,
            "eos_token_id": 1,
            "vision_config": {
                "depth": 1,
                "hidden_size": 8,
                "intermediate_size": 8,
                "num_heads": 1,
                "out_hidden_size": 16,
            },
            "image_token_id": IMAGE,
            "video_token_id": 8,
            "vision_start_token_id": START,
            "vision_end_token_id": END,
        }
    )
    owner = (
        Qwen2_5_VLModel
        if hasattr(Qwen2_5_VLModel, "get_rope_index")
        else Qwen2_5_VLForConditionalGeneration
    )
    return owner(config).eval()


def _reference(segments: list) -> torch.Tensor:
    """transformers' get_rope_index on the same prompt (4.5x and 5.x signatures)."""
    ids: list[int] = []
    grids = []
    for seg in segments:
        if isinstance(seg, TextSegment):
            ids += [2] * seg.length
        else:
            ids[-1] = START  # every image follows <|vision_start|>, as in Qwen's processor
            ids += [IMAGE] * seg.length
            grids.append(seg.grid_thw)
    input_ids = torch.tensor([ids])
    kwargs = {"image_grid_thw": torch.tensor(grids)}
    model = _tiny_model()
    if "mm_token_type_ids" in inspect.signature(model.get_rope_index).parameters:
        kwargs["mm_token_type_ids"] = (input_ids == IMAGE).int()
    position_ids, _ = model.get_rope_index(input_ids, **kwargs)
    return position_ids[:, 0]


@pytest.mark.parametrize(
    "grids",
    [[(1, 4, 6)], [(1, 6, 4), (1, 2, 2)], [(1, 4, 4)] * 6, [(1, 8, 2), (1, 2, 10)]],
)
def test_matches_transformers_get_rope_index(grids) -> None:
    segments: list = [TextSegment(3)]
    for i, grid in enumerate(grids):
        segments += [ImageSegment(grid), TextSegment(2 + i)]
    ours = mrope_position_ids(segments)
    assert torch.equal(ours, _reference(segments))


def test_rule_image_rows_and_text_resume() -> None:
    ids = mrope_position_ids([TextSegment(2), ImageSegment((1, 4, 6)), TextSegment(2)])
    image = ids[:, 2:8]  # 2 x 3 merged tokens starting at s = 2
    assert image[0].tolist() == [2] * 6
    assert image[1].tolist() == [2, 2, 2, 3, 3, 3]
    assert image[2].tolist() == [2, 3, 4, 2, 3, 4]
    # text resumes at s + max(2, 3) = 5 on all three rows
    assert ids[:, 8].tolist() == [5, 5, 5]
    assert next_position(ids) == 7


def test_kept_positions_index_the_full_ids() -> None:
    full = mrope_position_ids([TextSegment(1), ImageSegment((1, 4, 4)), TextSegment(1)])
    mask = torch.tensor([True, False, True, False, True, True])
    kept = kept_positions(full, mask)
    assert torch.equal(kept, full[:, [0, 2, 4, 5]])
    with pytest.raises(ValueError, match="keep_mask"):
        kept_positions(full, mask[:-1])


def test_bad_segments_are_rejected() -> None:
    with pytest.raises(ValueError, match="merge"):
        ImageSegment((1, 3, 4))
    with pytest.raises(ValueError):
        TextSegment(-1)
    with pytest.raises(TypeError):
        mrope_position_ids([3])
