"""Named model shapes: the real Qwen2.5-VL-3B (Impromptu-VLA 3B), the compact CPU default, tiny.

Only configurations live here (no weights): the 3B one answers token-count and FLOP questions at
the paper's scale without instantiating 3B parameters.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import Qwen2_5_VLConfig

from fastdrive_ros.core_types import CAMERA_NAMES

# Qwen2.5-VL's special-token ids (its tokenizer), used by the 3B config.
QWEN_IDS = {
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}
COMPACT_IMAGE_SIZE = (280, 504)  # H x W per camera: 10 x 18 merged tokens = 180 per camera
COMPACT_VOCAB = 512


def token_counts(image_size: tuple[int, int], *, patch: int = 14, merge: int = 2) -> int:
    """Merged visual tokens of one image of (H, W) pixels: (H / 28) * (W / 28) for Qwen2.5-VL.

    The image must already be resized to multiples of patch * merge (Qwen's smart_resize).
    """
    unit = patch * merge
    height, width = (int(v) for v in image_size)
    if patch < 1 or merge < 1:
        raise ValueError(f"patch and merge must be >= 1, got {patch}, {merge}")
    if height < unit or width < unit or height % unit or width % unit:
        raise ValueError(
            f"image size {height}x{width} must be positive multiples of {unit} px "
            f"(patch {patch} x merge {merge}); e.g. {max(unit, height // unit * unit)}x"
            f"{max(unit, width // unit * unit)}"
        )
    return (height // unit) * (width // unit)


def _flat(
    text: dict[str, Any], vision: dict[str, Any], ids: dict[str, int], tie: bool
) -> dict[str, Any]:
    """config.json in the flat layout real checkpoints ship (transformers 4.x and 5.x read it).

    Text fields at the top level, M-RoPE as rope_scaling {"type": "mrope"}: bundles written by
    either major version load in the other.
    """
    text = dict(text)
    section = text.pop("mrope_section")
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        **text,
        "rope_scaling": {"type": "mrope", "mrope_section": list(section)},
        "use_sliding_window": False,
        "tie_word_embeddings": tie,
        "vision_config": dict(vision),
        **ids,
    }


def qwen_config_from(flat: dict[str, Any]) -> Qwen2_5_VLConfig:
    """The transformers config of a config.json dict (flat or nested)."""
    return Qwen2_5_VLConfig.from_dict(copy.deepcopy(flat))  # transformers edits nested dicts


def qwen25_vl_3b_config() -> Qwen2_5_VLConfig:
    """Qwen2.5-VL-3B-Instruct's shapes (Impromptu-VLA 3B fine-tunes it); random weights only."""
    return qwen_config_from(qwen25_vl_3b_flat())


def qwen25_vl_3b_flat() -> dict[str, Any]:
    """Qwen2.5-VL-3B-Instruct's config.json (flat layout), for a VLAConfig."""
    text = {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "mrope_section": [16, 24, 24],
    }
    vision = {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 2048,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
        "hidden_act": "silu",
    }
    return _flat(text, vision, QWEN_IDS, tie=True)


def small_qwen_config(
    *,
    vocab_size: int,
    width: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vision_width: int,
    vision_depth: int,
    vision_heads: int,
    full_attention: tuple[int, ...],
    special_ids: dict[str, int],
) -> dict[str, Any]:
    """A small Qwen2.5-VL of the real architecture (M-RoPE split 1:1.5:1.5 like the 3B).

    Returns the flat config.json dict; `qwen_config_from` turns it into a Qwen2_5_VLConfig.
    """
    head_dim = width // heads
    if width % heads or head_dim % 2 or head_dim < 8:
        raise ValueError(f"width {width} / heads {heads} must give an even head dim >= 8")
    half, unit = head_dim // 2, head_dim // 16  # the 3B splits 64 rotary pairs 16 / 24 / 24
    section = [half - 6 * unit, 3 * unit, 3 * unit]
    text = {
        "vocab_size": vocab_size,
        "hidden_size": width,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "mrope_section": section,
    }
    vision = {
        "depth": vision_depth,
        "hidden_size": vision_width,
        "intermediate_size": vision_width * 8 // 3 // 8 * 8,
        "num_heads": vision_heads,
        "out_hidden_size": width,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": list(full_attention),
        "tokens_per_second": 2,
        "hidden_act": "silu",
    }
    ids = {
        "bos_token_id": special_ids["<|endoftext|>"],
        "eos_token_id": special_ids["<|im_end|>"],
        "image_token_id": special_ids["<|image_pad|>"],
        "video_token_id": special_ids["<|video_pad|>"],
        "vision_start_token_id": special_ids["<|vision_start|>"],
        "vision_end_token_id": special_ids["<|vision_end|>"],
    }
    return _flat(text, vision, ids, tie=True)


def _compact_special_ids() -> dict[str, int]:
    """The compact BPE tokenizer puts its special tokens first, in SPECIAL_TOKENS order."""
    from fastdrive_ros.nn.tokenizer import SPECIAL_TOKENS

    return {name: i for i, name in enumerate(SPECIAL_TOKENS)}


def compact_config():
    """The embedded default (VLAConfig): six 280x504 cameras (1080 tokens), CPU-sized.

    Vision: 4 blocks at width 192 (3 heads), 112-px windows, full attention in the last block,
    2x2 merger to D = 256. LLM: 4 layers at width 256 (4 heads, GQA with 2 KV heads), MLP 1024,
    a 512-token vocabulary; waypoints from a regression head as a residual over the ego status'
    kinematic prior, the status read as numbers (EgoEncoder; issue 8). The ReconPruner is sized
    like the paper's against its tower: one decoder layer at D = 256 with 4 heads / 1 KV head and
    an MLP of 128 is 0.26 M parameters, 9 % of the 2.79 M tower (the paper: 0.077B against
    Qwen2.5-VL-3B's 0.67B tower, 11 %); the first default's pruner (`for_width`, 1.28 M) was 46 %.
    Analytic cost per frame: vision ~22 GFLOP, ReconPruner ~3, LLM prefill ~11.3 at 1080
    visual tokens and ~2.6 at 270 (4.4x less), so the visual tokens dominate the prefill.
    """
    from fastdrive_ros.nn.recon_pruner import ReconPrunerConfig
    from fastdrive_ros.nn.vla import VLAConfig

    qwen = small_qwen_config(
        vocab_size=COMPACT_VOCAB,
        width=256,
        layers=4,
        heads=4,
        kv_heads=2,
        intermediate=1024,
        vision_width=192,
        vision_depth=4,
        vision_heads=3,
        full_attention=(3,),
        special_ids=_compact_special_ids(),
    )
    return VLAConfig(
        qwen=qwen,
        image_size=COMPACT_IMAGE_SIZE,
        camera_names=CAMERA_NAMES,
        prompt_style="compact",
        head="regression",
        pruner=ReconPrunerConfig(
            hidden_size=256, num_attention_heads=4, num_key_value_heads=1, intermediate_size=128
        ).to_dict(),
        default_prune_ratio=0.5,
        waypoint_scale=10.0,
        tokenizer={"kind": "compact-bpe", "vocab_size": COMPACT_VOCAB},
        ego_encoder=True,
        waypoint_prior="kinematic",
    )


def tiny_config(
    *, cameras: int = 2, head: str = "regression", pruner: bool = True, ego_numbers: bool = False
):
    """A VLAConfig for fast tests: 56x84 images (6 tokens each), a 3-layer LLM at width 64.

    `ego_numbers` (regression head only): the compact default's EgoEncoder and kinematic prior.
    """
    from fastdrive_ros.nn.recon_pruner import ReconPrunerConfig
    from fastdrive_ros.nn.vla import VLAConfig

    qwen = small_qwen_config(
        vocab_size=COMPACT_VOCAB,
        width=64,
        layers=3,
        heads=4,
        kv_heads=2,
        intermediate=128,
        vision_width=32,
        vision_depth=2,
        vision_heads=2,
        full_attention=(1,),
        special_ids=_compact_special_ids(),
    )
    return VLAConfig(
        qwen=qwen,
        image_size=(56, 84),
        camera_names=CAMERA_NAMES[:cameras],
        prompt_style="compact",
        head=head,
        pruner=ReconPrunerConfig.for_width(64).to_dict() if pruner else None,
        default_prune_ratio=0.5,
        waypoint_scale=10.0,
        tokenizer={"kind": "compact-bpe", "vocab_size": COMPACT_VOCAB},
        ego_encoder=ego_numbers,
        waypoint_prior="kinematic" if ego_numbers and head == "regression" else "none",
    )
