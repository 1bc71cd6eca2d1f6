"""Named configs: the real Qwen2.5-VL-3B shapes and token counts, the compact default, tiny."""

from __future__ import annotations

import pytest

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.nn.configs import (
    compact_config,
    qwen25_vl_3b_config,
    qwen25_vl_3b_flat,
    tiny_config,
    token_counts,
)
from fastdrive_ros.nn.llm_stage import mrope_section_of, text_config_of
from fastdrive_ros.nn.selection import keep_count
from fastdrive_ros.nn.vla import VLAConfig


def test_qwen25_vl_3b_shapes() -> None:
    config = qwen25_vl_3b_config()
    vision, text = config.vision_config, text_config_of(config)
    assert (vision.depth, vision.hidden_size, vision.num_heads) == (32, 1280, 16)
    assert (vision.window_size, list(vision.fullatt_block_indexes)) == (112, [7, 15, 23, 31])
    assert (vision.patch_size, vision.spatial_merge_size, vision.out_hidden_size) == (14, 2, 2048)
    assert (text.num_hidden_layers, text.hidden_size, text.intermediate_size) == (36, 2048, 11008)
    assert (text.num_attention_heads, text.num_key_value_heads) == (16, 2)
    assert text.vocab_size == 151936 and config.tie_word_embeddings
    assert mrope_section_of(text) == [16, 24, 24]
    assert config.image_token_id == 151655 and config.vision_start_token_id == 151652


def test_paper_token_counts_at_1596() -> None:
    n = token_counts((1596, 1596))
    assert n == 3249
    assert [keep_count(n, p) for p in (0.25, 0.5, 0.75)] == [2436, 1624, 812]
    # the same numbers through a VLAConfig with the 3B shapes (no weights are built)
    config = VLAConfig(
        qwen=qwen25_vl_3b_flat(),
        image_size=(1596, 1596),
        camera_names=CAMERA_NAMES[:1],
        prompt_style="impromptu",
        head="text",
        tokenizer={"kind": "checkpoint"},
    )
    assert config.tokens_per_camera == 3249
    assert token_counts((896, 1596)) == 1824 and token_counts((476, 840)) == 510


def test_token_counts_needs_multiples_of_28() -> None:
    with pytest.raises(ValueError, match="multiples of 28.*e.g. 896x1596"):
        token_counts((900, 1600))
    assert token_counts((28, 28)) == 1
    assert token_counts((64, 64), patch=16, merge=2) == 4


def test_compact_and_tiny_configs() -> None:
    compact = compact_config()
    assert compact.camera_names == CAMERA_NAMES and compact.image_size == (280, 504)
    assert compact.tokens_per_camera == 180  # 1080 visual tokens over six cameras
    assert compact.head == "regression" and compact.prompt_style == "compact"
    qwen = compact.qwen_config()
    assert text_config_of(qwen).hidden_size == qwen.vision_config.out_hidden_size == 256
    assert compact.pruner["hidden_size"] == 256
    assert mrope_section_of(text_config_of(qwen)) == [8, 12, 12]
    tiny = tiny_config(cameras=3, head="text", pruner=False)
    assert tiny.tokens_per_camera == 6 and len(tiny.camera_names) == 3 and tiny.pruner is None
