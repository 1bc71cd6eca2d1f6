"""The project's VLA bundle (or a Qwen2.5-VL checkpoint) behind the harness's EvalModel protocol.

Same preprocessing as the node (`nn.vision.preprocess_images`), the same encoder, selectors and
planner as `VLA.plan_frame`; only the order of work differs (one encoder pass per sample, reused).
When VisPruner is evaluated the encoder also returns the attention it ranks by, for every row, so
every row's encoder time includes that capture (recorded in the metadata).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.eval.flops import TextShape, VisionShape
from fastdrive_ros.eval.model_api import ModelShapes, PlanOutput, PrunerShape
from fastdrive_ros.nn.frame_memory import FrameSlot
from fastdrive_ros.nn.selection import Selection, VisualTokens


class VLAEvalModel:
    """EvalModel over a loaded `fastdrive_ros.nn.vla.VLA`."""

    def __init__(self, *, vla: Any, name: str, attention: bool = False) -> None:
        from fastdrive_ros.nn.planner import text_config_of

        self.vla = vla
        self.name = name
        self.attention = bool(attention)
        config = vla.config
        self.image_size = tuple(config.image_size)
        self.camera_names = tuple(config.camera_names)
        qwen = config.qwen_config()
        pruner = None
        if vla.pruner is not None:
            p = vla.pruner.config
            pruner = PrunerShape(
                hidden_size=p.hidden_size,
                num_heads=p.num_attention_heads,
                num_kv_heads=p.num_key_value_heads,
                intermediate_size=p.intermediate_size,
            )
        self.shapes = ModelShapes(
            vision=VisionShape.from_config(qwen.vision_config),
            text=TextShape.from_config(text_config_of(qwen)),
            pruner=pruner,
        )
        self._last_prompt: tuple[tuple[str, ...], int] | None = None

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        device: str = "cpu",
        resolution: str | None = None,
        **kwargs: Any,
    ) -> VLAEvalModel:
        """Load a model folder (our bundle or a local Qwen2.5-VL / Impromptu-VLA checkpoint).

        `resolution` is a real checkpoint's input setting (VLA.from_pretrained).
        """
        from fastdrive_ros.nn.vla import VLA

        vla = VLA.from_pretrained(folder, device=device, resolution=resolution)
        return cls(vla=vla, name=str(folder), **kwargs)

    @property
    def resize(self) -> str:
        """How camera images are resampled to image_size (VLAConfig.resize, nn/resize.py)."""
        return self.vla.config.resize

    @property
    def reference_point(self) -> str:
        """The trajectory reference point the model was trained in (data/reference.py).

        Real checkpoints (Impromptu-VLA, trained on SparseDrive's data): the LiDAR sensor; our
        bundles: the rear axle (the reader's default, what the compact model was trained on).
        """
        return "lidar" if self.vla.config.tokenizer.get("kind") == "checkpoint" else "rear_axle"

    @property
    def device(self) -> torch.device:
        return self.vla.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vla.planner.model.embed_tokens.weight.dtype

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        from fastdrive_ros.nn.vision import preprocess_images

        pixels = preprocess_images(
            images.to(self.device), size=self.image_size, resize=self.resize
        )
        return pixels.to(self.dtype)

    def encode(self, pixels: torch.Tensor) -> VisualTokens:
        return self.vla.vision(pixels, return_attention=self.attention)

    def selector(self, name: str, *, seed: int) -> Any:
        kwargs = {"seed": seed} if name == "random" else {}
        return self.vla.make_selector(name, **kwargs)

    def selector_stage(self, name: str) -> str:
        from fastdrive_ros.nn.registry import selector_stage

        return selector_stage(name, probes=True)

    def plan(
        self,
        visual: VisualTokens,
        selection: Selection,
        ego: EgoState,
        *,
        llm_selector: Any = None,
        keep: int | None = None,
        memory: FrameSlot | None = None,
    ) -> PlanOutput:
        planner = self.vla.planner
        index = selection.kept_index
        # probes (shuffled) may hand other tokens for the kept positions
        tokens = selection.tokens
        if tokens is None:
            tokens = visual.tokens[index.to(visual.tokens.device)]
        out = planner.plan_detailed(
            kept_tokens=tokens,
            kept_index=index.cpu(),
            grid_thw=visual.grid_thw,
            ego=ego,
            selector=llm_selector,
            keep=keep,
            memory=memory,
        )
        if llm_selector is None:
            return PlanOutput(out.result)
        kept = None if out.selection is None else out.selection.kept_index
        # the sequence length each LLM layer saw, as the planner measured it in this prefill
        return PlanOutput(out.result, kept_index=kept, tokens_per_layer=out.tokens_per_layer)

    def text_tokens(self, ego: EgoState) -> int:
        """Prompt tokens (without visual tokens) from the model's own prompt and tokenizer.

        A planner with an EgoEncoder reads the status as numbers (added to <plan>, no token of
        its own), so its prompt carries no status digits and is counted without them.
        """
        from fastdrive_ros.nn.prompt import build_prompt

        prompt = build_prompt(
            ego,
            num_cameras=len(self.camera_names),
            style=self.vla.config.prompt_style,
            ego_text=self.vla.planner.ego_encoder is None,
        )
        if self._last_prompt is None or self._last_prompt[0] != prompt.texts:
            count = sum(len(self.vla.tokenizer.encode(t)) for t in prompt.texts)
            self._last_prompt = (prompt.texts, count)  # every method of a sample asks again
        return self._last_prompt[1]

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
