"""Test doubles of the backend and planner for load tests, fault tests and the soak benchmark.

They follow the real protocols (EncoderPrunerBackend, Planner) and do real, cheap work on the
pixels (average-pooled patch tokens, a norm score, top-K in original order), so the pipeline's
data path is exercised; latency is either slept or charged to a simulated clock, so a "slow model"
needs no minutes of waiting. They are not models: never use them to drive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fastdrive_ros.core_types import (
    DEFAULT_MAX_NEW_TOKENS,
    PLAN_STEPS,
    EgoState,
    PlanFailure,
    PlanOk,
    PlanResult,
)
from fastdrive_ros.nn.frame_memory import FrameSlot
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.runtime.base import EncoderPrunerOutput

_PATCH = 28  # one merged token covers 28 x 28 px, as in Qwen2.5-VL


def simple_preprocess(size: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize + scale to [-1, 1]: a stand-in for nn.vision.preprocess_images in tests."""

    def run(images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", antialias=True)
        return (x - 0.5) / 0.5

    return run


class FakeBackend:
    """Patch-mean tokens, norm scores, top-K kept in original order.

    Attributes:
        latency_ms: per-call cost: slept, or added to `clock` when one is given.
        non_finite: emit NaN tokens (a model gone bad).
        raises: raise RuntimeError from run (a crashed runtime).
    """

    name = "torch"

    def __init__(
        self,
        *,
        dim: int = 16,
        prune_ratio: float = 0.5,
        latency_ms: float = 0.0,
        clock: ManualClock | None = None,
    ) -> None:
        if not 0.0 <= prune_ratio < 1.0:
            raise ValueError(f"prune_ratio must be in [0, 1), got {prune_ratio}")
        self.dim = dim
        self.prune_ratio = prune_ratio
        self.latency_ms = latency_ms
        self.clock = clock
        self.non_finite = False
        self.raises = False
        self.calls = 0
        self._proj = torch.linspace(-1.0, 1.0, 3 * dim).reshape(3, dim)

    def run(self, pixels: np.ndarray | torch.Tensor) -> EncoderPrunerOutput:
        """[C, 3, H, W] -> kept tokens [K, dim] of the C*(H/28)*(W/28) patch tokens."""
        self.calls += 1
        start = time.perf_counter()
        if self.raises:
            raise RuntimeError("fake backend failure")
        x = torch.as_tensor(pixels, dtype=torch.float32)
        cams, _, height, width = x.shape
        gh, gw = max(1, height // _PATCH), max(1, width // _PATCH)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, (gh, gw))  # [C, 3, gh, gw]
        tokens = pooled.permute(0, 2, 3, 1).reshape(-1, 3) @ self._proj  # [N, dim]
        if self.non_finite:
            tokens = tokens.clone()
            tokens[0, 0] = float("nan")
        scores = tokens.norm(dim=1)
        keep = max(1, int(tokens.shape[0] * (1.0 - self.prune_ratio)))
        kept_index = torch.topk(scores, keep, sorted=True).indices.sort().values
        grid = torch.tensor([[1, gh * 2, gw * 2]] * cams, dtype=torch.long)
        if self.clock is not None:
            self.clock.advance(int(self.latency_ms * 1e6))
        elif self.latency_ms:
            time.sleep(self.latency_ms / 1e3)
        spent = (time.perf_counter() - start) * 1e3
        cost = self.latency_ms if self.clock is not None else spent
        return EncoderPrunerOutput(
            kept_tokens=tokens[kept_index],
            kept_index=kept_index,
            grid_thw=grid,
            scores=scores,
            timings_ms={"encode": 0.8 * cost, "prune": 0.2 * cost},
        )

    def close(self) -> None:
        return None


class FakePlanner:
    """Waypoints from the ego speed and the token mean; or a chosen failure.

    Attributes:
        answer: "ok", "unparseable" (a PlanFailure as the real parser gives), "non_finite"
            (NaN waypoints in a PlanOk, which the pipeline must catch), "raise".
        latency_ms: slept, or charged to `clock`.
    """

    def __init__(self, *, latency_ms: float = 0.0, clock: ManualClock | None = None) -> None:
        self.latency_ms = latency_ms
        self.clock = clock
        self.answer = "ok"
        self.calls = 0
        self.last_ego: EgoState | None = None
        self.last_memory: FrameSlot | None = None

    def plan(
        self,
        *,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        ego: EgoState,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        memory: FrameSlot | None = None,
    ) -> PlanResult:
        self.calls += 1
        self.last_ego = ego
        self.last_memory = memory
        if self.clock is not None:
            self.clock.advance(int(self.latency_ms * 1e6))
        elif self.latency_ms:
            time.sleep(self.latency_ms / 1e3)
        timings = {"prefill": 0.7 * self.latency_ms, "decode": 0.3 * self.latency_ms}
        if self.answer == "raise":
            raise RuntimeError("fake planner failure")
        if self.answer == "unparseable":
            return PlanFailure("unparseable", "no <PLANNING> block", "garbage", timings)
        t = np.arange(1, PLAN_STEPS + 1) * 0.5
        lateral = float(kept_tokens.mean()) * 0.01
        waypoints = np.stack([max(ego.speed, 1.0) * t, lateral * t], axis=1)
        if self.answer == "non_finite":
            waypoints[2, 1] = np.nan
        return PlanOk(waypoints=waypoints, text=None, generated_tokens=0, timings_ms=timings)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    """[H, W, 3] uint8 RGB -> JPEG bytes (OpenCV)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the test image")
    return buf.tobytes()


def sample_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random-ish [H, W, 3] uint8 RGB image (compresses like a camera picture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(0, 255, size=3)
    waves = [np.sin(xx / (7 + 3 * c) + yy / (11 + c) + seed) for c in range(3)]
    return np.stack([(base[c] + 60 * waves[c]) % 256 for c in range(3)], axis=2).astype(np.uint8)


def camera_frames(
    stamp_ns: int,
    *,
    camera_names: tuple[str, ...],
    data: bytes,
    received_ns: int | None = None,
    offsets_ms: dict[str, float] | None = None,
) -> list:
    """One CameraFrameIn per camera (JPEG `data`), stamps offset per camera by `offsets_ms`."""
    from fastdrive_ros.pipeline.types import CameraFrameIn

    offsets = offsets_ms or {}
    received = stamp_ns if received_ns is None else received_ns
    return [
        CameraFrameIn(
            channel=name,
            stamp_ns=stamp_ns + int(offsets.get(name, 0.0) * 1e6),
            data=data,
            encoding="jpeg",
            received_ns=received,
        )
        for name in camera_names
    ]


def shared_tiny_model(base: Path) -> Path:
    """build_tiny_model under `base` (e.g. pytest's session temp dir), built once per session."""
    from fastdrive_ros.pipeline.factory import build_tiny_model

    return build_tiny_model(Path(base) / "tiny_vla")
