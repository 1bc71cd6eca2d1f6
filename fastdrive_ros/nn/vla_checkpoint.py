"""Reading a real Qwen2.5-VL / Impromptu-VLA Hugging Face checkpoint folder into a VLA.

The folder is what `huggingface-cli download` leaves (config.json, model*.safetensors with an
optional model.safetensors.index.json, tokenizer.json); nothing is fetched. Both weight layouts
load: transformers 4.x ("model.layers.*", "visual.*") and 5.x ("model.language_model.*",
"model.visual.*"). The vision tower is read by VisionEncoder.from_pretrained.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.nn.resize import checkpoint_resolution

# The front camera at the checkpoint's own resolution by default (nn/resize.py: Impromptu-VLA's
# fine-tuning input, 672x392); resolution="paper" gives FastDriveVLA's 1596x1596 (3249 tokens).
CHECKPOINT_IMAGE_SIZE = checkpoint_resolution(None).image_size
PAPER_IMAGE_SIZE = checkpoint_resolution("paper").image_size
CHECKPOINT_CAMERAS = CAMERA_NAMES[:1]
_LLM_PREFIXES = (
    ("model.language_model.", "model."),
    ("model.", "model."),
    ("lm_head.", "lm_head."),
)
_VISION_PREFIXES = ("visual.", "model.visual.")


def weight_shards(folder: Path) -> list[Path]:
    """The checkpoint's safetensors files (all of those the index names, else every one)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{index} is not a valid safetensors index: {exc}") from exc
        shards = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no *.safetensors weights in {folder}")
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        raise FileNotFoundError(
            f"weight shards missing from {folder}: {', '.join(missing)} (incomplete download?)"
        )
    return shards


def read_llm_state(folder: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The language-model weights under VLAPlanner's names ("model.*", "lm_head.*")."""
    from safetensors import SafetensorError, safe_open

    state: dict[str, torch.Tensor] = {}
    for shard in weight_shards(folder):
        try:
            with safe_open(str(shard), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    if key.startswith(_VISION_PREFIXES):
                        continue
                    for prefix, target in _LLM_PREFIXES:
                        if key.startswith(prefix):
                            name = target + key[len(prefix) :]
                            state[name] = handle.get_tensor(key).to(dtype)
                            break
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"{shard} is corrupt or truncated: {exc}") from exc
    return state


def load_checkpoint(
    cls,
    folder: Path,
    raw: dict[str, Any],
    *,
    dtype: torch.dtype,
    image_size: tuple[int, int] | None,
    camera_names: tuple[str, ...] | None,
    resolution: str | None = None,
):
    """VLA (class `cls`) from a checkpoint folder whose config.json was parsed into `raw`.

    `resolution` (nn/resize.py) sets size and resampling; `image_size` overrides the size.
    """
    chosen = checkpoint_resolution(resolution)
    from transformers import Qwen2_5_VLConfig

    from fastdrive_ros.nn.planner import VLAPlanner
    from fastdrive_ros.nn.tokenizer import PlannerTokenizer
    from fastdrive_ros.nn.vision import VisionEncoder
    from fastdrive_ros.nn.vla import PRUNER_DIR, VLAConfig

    try:
        qwen = Qwen2_5_VLConfig.from_dict(copy.deepcopy(raw))  # transformers edits nested dicts
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{folder / 'config.json'} is not a valid Qwen2.5-VL config: {exc}"
        ) from exc
    tokenizer = PlannerTokenizer.load(folder)
    pruner = None
    if (folder / PRUNER_DIR).is_dir():
        from fastdrive_ros.nn.recon_pruner import ReconPruner

        width = int(qwen.vision_config.out_hidden_size)
        pruner = ReconPruner.load(folder / PRUNER_DIR, expected_width=width)
    config = VLAConfig(
        qwen=dict(raw),  # the checkpoint's own config.json: any transformers version reads it
        image_size=image_size or chosen.image_size,
        resize=chosen.resize,
        camera_names=camera_names or CHECKPOINT_CAMERAS,
        prompt_style="impromptu",
        head="text",
        pruner=None if pruner is None else pruner.config.to_dict(),
        tokenizer={"kind": "checkpoint"},
    )
    vision = VisionEncoder.from_pretrained(folder, dtype=dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype.is_floating_point else previous)
    try:  # allocate the (large) LLM directly in the checkpoint's dtype
        planner = VLAPlanner(
            qwen_config=qwen, tokenizer=tokenizer, prompt_style="impromptu", regression_head=False
        )
    finally:
        torch.set_default_dtype(previous)
    state = read_llm_state(folder, dtype)
    if planner.tied_embeddings:
        state.pop("lm_head.weight", None)
    expected = {
        k for k in planner.state_dict() if not (planner.tied_embeddings and k == "lm_head.weight")
    }
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"language-model weights in {folder} do not fit its config.json: {len(missing)} "
            f"missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    try:
        planner.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ValueError(f"language-model weights in {folder} have wrong shapes: {exc}") from exc
    return cls(config=config, tokenizer=tokenizer, vision=vision, planner=planner, pruner=pruner)
