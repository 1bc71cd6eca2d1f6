"""What the evaluation harness needs from a model, as a small protocol.

The harness runs the vision encoder once per sample and reuses its tokens for every encoder-stage
pruner and ratio, so it needs the model's stages separately (preprocess, encode, select, plan)
rather than the node's one-call `plan_frame`. `fastdrive_ros.eval.vla_adapter.VLAEvalModel`
implements it for the project's VLA bundle; tests may implement it with small fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from fastdrive_ros.core_types import EgoState, PlanResult
from fastdrive_ros.eval.flops import TextShape, VisionShape
from fastdrive_ros.nn.frame_memory import FrameSlot
from fastdrive_ros.nn.selection import Selection, VisualTokens


@dataclass(frozen=True)
class PrunerShape:
    """ReconPruner sizes for its analytic FLOPs (one Qwen2 decoder layer at the encoder width)."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int


@dataclass(frozen=True)
class ModelShapes:
    """Everything the analytic FLOP count needs; `pruner` is None without a ReconPruner."""

    vision: VisionShape
    text: TextShape
    pruner: PrunerShape | None = None


@dataclass(frozen=True)
class PlanOutput:
    """A plan plus, for LLM-stage selectors, the visual tokens they kept inside the prefill.

    Attributes:
        result: PlanOk or PlanFailure (timings_ms with "prefill" and "decode" in ms).
        kept_index: [K] int64 ascending visual-token indices an LLM-stage selector kept (overlays,
            kept-token counts), None when the planner saw exactly the tokens it was given.
        tokens_per_layer: the sequence length at each LLM layer when it changes inside the
            prefill (FastV, SparseVLM), for the analytic FLOPs; None when constant.
    """

    result: PlanResult
    kept_index: torch.Tensor | None = None
    tokens_per_layer: tuple[int, ...] | None = None


@runtime_checkable
class EvalModel(Protocol):
    """A VLA split into the stages the harness times and reuses.

    Attributes:
        name: shown in the results (e.g. the model folder).
        image_size: (H, W) per camera at the encoder input.
        camera_names: cameras in the order the model expects them.
        shapes: sizes for the analytic FLOPs.
    """

    name: str
    image_size: tuple[int, int]
    camera_names: tuple[str, ...]
    shapes: ModelShapes

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[C, H0, W0, 3] uint8 RGB -> [C, 3, H, W] normalised float on the model's device."""
        ...

    def encode(self, pixels: torch.Tensor) -> VisualTokens:
        """Vision encoder (with the attention VisPruner needs): [C, 3, H, W] -> VisualTokens."""
        ...

    def selector(self, name: str, *, seed: int) -> Any:
        """The selector `name`: encoder-stage ones have `select(visual, keep) -> Selection`."""
        ...

    def selector_stage(self, name: str) -> str:
        """Where the selector works: "encoder" or "llm"."""
        ...

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
        """Plan from the tokens in `selection` (all of them for LLM-stage selectors).

        memory: this keyframe's slot in the method's FrameMemory (nn/frame_memory.py), for a
        planner that compares with the keyframe before; one that does not ignores it.
        """
        ...

    def text_tokens(self, ego: EgoState) -> int:
        """Prompt length in tokens without the visual tokens (for the analytic prefill FLOPs)."""
        ...

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA) so wall-clock timings are honest."""
        ...
