"""The node's own frame pipeline as the closed-loop planner (`fastdrive closed-loop`).

This module is the coupling the eval room may not make itself (DESIGN.md section 3: eval/ does
not import pipeline/): `PipelinePlanner` hands each closed-loop frame to a FramePipeline exactly
as the node receives its inputs (six JPEG CompressedImages with one stamp, odometry, the driving
command), steps it, and returns the plan. Everything else (world, controller, metrics, reports)
is in eval/closed_loop.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from fastdrive_ros.eval.closed_loop.episode import LoopFrame, LoopPlan
from fastdrive_ros.eval.closed_loop.runner import NO_IMAGES, RATIO_FREE, Row

JPEG_QUALITY = 90  # what the synthetic dataset and its bags carry


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """One camera image as the node receives it from a CompressedImage topic."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


class NoImagesBackend:
    """Wraps an encoder+pruner backend and keeps zero visual tokens: the planner drives blind.

    The encoder still runs (grid sizes and timings stay those of the real node); only the kept
    set is emptied, which the planner supports (its prompt-only training stage saw no tokens).
    """

    def __init__(self, inner) -> None:  # noqa: ANN001 (an EncoderPrunerBackend)
        self.inner = inner
        self.name = inner.name

    def run(self, pixels):  # noqa: ANN001, ANN201
        from dataclasses import replace

        out = self.inner.run(pixels)
        return replace(
            out, kept_tokens=out.kept_tokens[:0], kept_index=out.kept_index[:0], scores=None
        )

    def close(self) -> None:
        self.inner.close()


class PipelinePlanner:
    """A LoopPlanner over the node's FramePipeline (one model load, a fresh pipeline per route)."""

    def __init__(
        self, *, model: str | Path, row: Row, backend: str = "torch", device: str = "cpu"
    ) -> None:
        from fastdrive_ros.pipeline.config import PipelineConfig
        from fastdrive_ros.pipeline.factory import PipelineParams, build_pipeline

        pruner = "none" if row.pruner == NO_IMAGES else row.pruner
        params = PipelineParams(
            model_dir=model,
            backend=backend,
            pruner=pruner,
            prune_ratio=row.ratio if row.pruner not in RATIO_FREE else 0.0,
            device=device,
            config=PipelineConfig(),
            warm_up=False,
        )
        self._base = build_pipeline(params)
        if row.pruner == NO_IMAGES:
            self._base.backend = NoImagesBackend(self._base.backend)
        self.image_size = self._base.image_size
        self._pipeline = self._base
        self._clock = None

    def start_route(self) -> None:
        from fastdrive_ros.pipeline.clock import ManualClock
        from fastdrive_ros.pipeline.frame_pipeline import FramePipeline

        base = self._base
        self._clock = ManualClock(0)
        self._pipeline = FramePipeline(
            config=base.config,
            backend=base.backend,
            planner=base.planner,
            clock=self._clock,
            image_size=base.image_size,
            device=base.device,
            info=base.info,
        )
        # Seeded selectors (random) restart per route, so a route's result does not depend on
        # which routes ran before it (the torch backend keeps its selector private).
        inner = getattr(base.backend, "inner", base.backend)
        reset = getattr(getattr(inner, "_selector", None), "reset", None)
        if callable(reset):
            reset()

    def plan(self, frame: LoopFrame) -> LoopPlan:
        from fastdrive_ros.core_types import CAMERA_NAMES, PlanOk
        from fastdrive_ros.pipeline.types import CameraFrameIn, CommandIn, OdometryIn

        pipeline, clock = self._pipeline, self._clock
        start = time.perf_counter()
        for o in frame.odometry:
            pipeline.on_odometry(OdometryIn(o.stamp_ns, o.x, o.y, o.yaw, o.v, o.yaw_rate))
        pipeline.on_command(CommandIn(frame.stamp_ns, frame.command))
        clock.set(frame.stamp_ns)
        for name, rgb in zip(CAMERA_NAMES, frame.images):
            pipeline.on_camera(
                CameraFrameIn(
                    name, frame.stamp_ns, encode_jpeg(rgb), "jpeg", received_ns=frame.stamp_ns
                )
            )
        out = pipeline.step(frame.stamp_ns)
        spent = time.perf_counter() - start
        if out is None:
            return LoopPlan(None, np.zeros(0, np.int64), 0, spent, "no output (frame dropped)")
        kept = np.asarray(out.kept_index)[: out.kept_tokens]
        if isinstance(out.plan, PlanOk):
            return LoopPlan(np.asarray(out.plan.waypoints), kept, out.total_tokens, spent)
        return LoopPlan(
            None, kept, out.total_tokens, spent, f"{out.plan.reason}: {out.plan.detail}"
        )


def validate_rows(rows: list[Row]) -> None:
    """Raise ValueError for an unknown selector or a ratio outside [0, 1)."""
    from fastdrive_ros.nn.registry import SELECTOR_NAMES

    known = (*SELECTOR_NAMES, NO_IMAGES)
    for row in rows:
        if row.pruner == "cdpruner":
            raise ValueError(
                "cdpruner needs the prompt's embeddings, which the node's encoder backends do not "
                "pass to selectors yet: it cannot drive in the closed loop"
            )
        if row.pruner not in known:
            raise ValueError(f"unknown pruner {row.pruner!r}: choose from {', '.join(known)}")
        if row.pruner not in RATIO_FREE and not 0.0 <= row.ratio < 1.0:
            raise ValueError(f"prune ratio must be in [0, 1), got {row.ratio:g} for {row.pruner}")
