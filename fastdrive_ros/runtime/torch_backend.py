"""The reference backend: the torch encoder and selector, timed per stage, CUDA where present."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fastdrive_ros.runtime.base import BackendName, EncoderPrunerOutput
from fastdrive_ros.runtime.model_source import ModelParts


def resolve_device(device: str | torch.device) -> torch.device:
    """Resolve "auto" to cuda if available else cpu; anything else as torch understands it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return resolved


def check_pixels(pixels: Any, expected: tuple[int, ...]) -> None:
    """Raise ValueError naming both shapes when a frame does not match the model's input."""
    shape = tuple(pixels.shape)
    if shape != tuple(expected):
        raise ValueError(
            f"pixels must be [C, 3, H, W] = {list(expected)} for this model, got {list(shape)}"
        )


class TorchBackend:
    """Encoder + selector in torch eager mode: the reference other backends are checked against.

    Args:
        parts: the model's encoder and pruner.
        selector: an EncoderStageSelector (ReconPruner, DivPrune...) or None to keep every token.
        keep: the selector's budget: a global K or one K per camera (KeepPlan.selector_keep).
        device: "auto", "cpu", "cuda", "cuda:1"...
    """

    name: BackendName = "torch"

    def __init__(
        self,
        *,
        parts: ModelParts,
        selector: Any | None,
        keep: int | Sequence[int] | None,
        device: str | torch.device = "auto",
    ) -> None:
        if selector is not None and keep is None:
            raise ValueError("a selector needs a keep budget")
        self._device = resolve_device(device)
        self._parts = parts
        self._encoder = parts.encoder.to(self._device).eval()
        self._selector = selector
        if isinstance(selector, torch.nn.Module):
            selector.to(self._device).eval()
        self._keep = list(keep) if isinstance(keep, Sequence) else keep
        self.last_inference_time_ms: float | None = None

    @property
    def device(self) -> torch.device:
        return self._device

    def _sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def run(self, pixels: np.ndarray | torch.Tensor) -> EncoderPrunerOutput:
        """Map pixels [C, 3, H, W] float32 normalised -> kept tokens [K, D], their indices [K]."""
        check_pixels(pixels, self._parts.input_shape)
        frame = torch.as_tensor(pixels, dtype=torch.float32).to(self._device)
        with torch.inference_mode():
            start = time.perf_counter()
            visual = self._encoder(frame)
            self._sync()
            encoded = time.perf_counter()
            if self._selector is None:
                index = torch.arange(visual.tokens.shape[0], device=visual.tokens.device)
                scores = None
            else:
                selection = self._selector.select(visual, self._keep)
                index = selection.kept_index.to(visual.tokens.device)
                scores = selection.scores
            kept = visual.tokens.index_select(0, index)
            self._sync()
            done = time.perf_counter()
        self.last_inference_time_ms = (done - start) * 1e3
        return EncoderPrunerOutput(
            kept_tokens=kept,
            kept_index=index,
            grid_thw=visual.grid_thw.to("cpu", torch.long),
            scores=scores,
            timings_ms={"encode": (encoded - start) * 1e3, "prune": (done - encoded) * 1e3},
        )

    def close(self) -> None:
        """Nothing to release (the modules belong to the model, which may be shared)."""

    def __enter__(self) -> TorchBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
