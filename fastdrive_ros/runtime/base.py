"""The backend contract the frame pipeline runs: pixels in, kept visual tokens out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

BackendName = Literal["tensorrt", "onnxruntime", "torch"]


@dataclass(frozen=True)
class EncoderPrunerOutput:
    """Result of the vision encoder + pruner graph for one frame.

    Attributes:
        kept_tokens: [K, D] float tensor on the planner's device.
        kept_index: [K] int64 ascending global indices into the N merged tokens (camera-major).
        grid_thw: [C, 3] int64 per-camera (t, h, w) in patch units.
        scores: [N] selector scores when the backend exposes them (overlays), else None.
        timings_ms: "encode", "prune" (or "encode_prune" when one fused graph cannot split them).
    """

    kept_tokens: torch.Tensor
    kept_index: torch.Tensor
    grid_thw: torch.Tensor
    scores: torch.Tensor | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class EncoderPrunerBackend(Protocol):
    """Runs encoder + pruner on a [C, 3, H, W] float32 normalised pixel batch (one frame)."""

    name: BackendName

    def run(self, pixels: np.ndarray | torch.Tensor) -> EncoderPrunerOutput: ...

    def close(self) -> None: ...
