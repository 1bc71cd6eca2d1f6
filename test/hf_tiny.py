"""A tiny random Qwen2.5-VL checkpoint in Hugging Face layout, written from a tiny config.

config.json as Qwen2.5-VL-3B-Instruct ships it (flat text fields), the weights in two safetensors
shards with an index (transformers 4.x or 5.x key layout) and the tokenizer files, nothing else:
what `huggingface-cli download` leaves for a real Qwen2.5-VL / Impromptu-VLA model.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.llm_stage import mrope_section_of, text_config_of
from fastdrive_ros.nn.vla import VLA


def flat_config(vla: VLA) -> dict:
    """config.json as Qwen2.5-VL-3B-Instruct ships it (transformers 4.x, flat text fields)."""
    qwen = vla.config.qwen_config()
    text = text_config_of(qwen)
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_hidden_layers": text.num_hidden_layers,
        "num_attention_heads": text.num_attention_heads,
        "num_key_value_heads": text.num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": text.max_position_embeddings,
        "rms_norm_eps": text.rms_norm_eps,
        "rope_theta": vla.config.qwen["rope_theta"],
        "rope_scaling": {"type": "mrope", "mrope_section": mrope_section_of(text)},
        "vocab_size": text.vocab_size,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "bos_token_id": text.bos_token_id,
        "eos_token_id": text.eos_token_id,
        "image_token_id": qwen.image_token_id,
        "video_token_id": qwen.video_token_id,
        "vision_start_token_id": qwen.vision_start_token_id,
        "vision_end_token_id": qwen.vision_end_token_id,
        "vision_config": {
            k: v
            for k, v in qwen.vision_config.to_dict().items()
            if k
            in (
                "depth",
                "hidden_size",
                "intermediate_size",
                "num_heads",
                "out_hidden_size",
                "patch_size",
                "spatial_merge_size",
                "temporal_patch_size",
                "window_size",
                "fullatt_block_indexes",
                "tokens_per_second",
                "hidden_act",
            )
        },
        "torch_dtype": "float32",
    }


def write_hf_checkpoint(vla: VLA, folder: Path, layout: str) -> None:
    """Write `vla` (a text-head model) as an HF checkpoint folder; layout '4.x' or '5.x'."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(flat_config(vla)))
    vla.tokenizer.save(folder)
    vision_prefix, llm_prefix = (
        ("visual.", "model.") if layout == "4.x" else ("model.visual.", "model.language_model.")
    )
    vision = {vision_prefix + k: v for k, v in vla.vision.tower.state_dict().items()}
    llm = {llm_prefix + k: v for k, v in vla.planner.model.state_dict().items()}
    shards = {"model-00001-of-00002.safetensors": vision, "model-00002-of-00002.safetensors": llm}
    weight_map = {}
    for name, tensors in shards.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / name))
        weight_map.update({k: name for k in tensors})
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    # the side files a hub download has (our loader reads config.json and tokenizer.json)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "Qwen2Tokenizer", "model_max_length": 32768})
    )
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "min_pixels": 3136,
                "max_pixels": 12845056,
                "patch_size": 14,
                "merge_size": 2,
                "temporal_patch_size": 2,
            }
        )
    )


def tiny_hf_checkpoint(folder: Path, *, seed: int = 5, layout: str = "5.x") -> Path:
    """A random tiny text-head model with one camera written as an HF checkpoint; returns it."""
    vla = VLA.build(tiny_config(cameras=1, head="text", pruner=False), seed=seed)
    write_hf_checkpoint(vla, Path(folder), layout)
    return Path(folder)
