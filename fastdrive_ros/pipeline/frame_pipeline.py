"""The ROS-free frame pipeline: sync -> decode -> preprocess -> encoder+pruner -> planner.

Transports call the cheap, thread-safe `on_camera` / `on_odometry` / `on_command` from their
callbacks and `step(now_ns)` from a timer or a worker thread (latest-frame: each step plans the
newest complete frame; frames that arrived while the model was busy are dropped and counted).
Nothing escapes `step` for bad input or model output: failures become a PlanFailure in the output,
a counter and a health reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from fastdrive_ros.core_types import (
    PLAN_STEPS,
    DrivingCommand,
    EgoState,
    PlanFailure,
    PlanOk,
    PlanResult,
)
from fastdrive_ros.nn.frame_memory import FrameMemory, FrameSlot
from fastdrive_ros.pipeline.assemble import DroppedFrame, FrameAssembler
from fastdrive_ros.pipeline.clock import Clock, SystemClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.counters import Counters
from fastdrive_ros.pipeline.ego import EgoEstimate, EgoHistory
from fastdrive_ros.pipeline.health import HealthInputs, assess
from fastdrive_ros.pipeline.latency import RollingLatency, StageTimer
from fastdrive_ros.pipeline.log_throttle import ThrottledLog
from fastdrive_ros.pipeline.sync import FrameSynchronizer
from fastdrive_ros.pipeline.types import (
    CameraFrameIn,
    CameraSlotReport,
    CommandIn,
    HealthReport,
    OdometryIn,
    PipelineOutput,
)
from fastdrive_ros.runtime.base import EncoderPrunerBackend, EncoderPrunerOutput

LOG = logging.getLogger("fastdrive_ros.pipeline")

Preprocess = Callable[[torch.Tensor], torch.Tensor]
"""[C, H0, W0, 3] uint8 RGB tensor (on the device) -> [C, 3, H, W] float32 normalised."""


class Planner(Protocol):
    """What the pipeline needs of the VLA planner (nn/planner.py's VLAPlanner has it)."""

    def plan(
        self,
        *,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        ego: EgoState,
        max_new_tokens: int,
        memory: FrameSlot | None = None,
    ) -> PlanResult: ...


@dataclass(frozen=True)
class PipelineInfo:
    """Static facts about the loaded model, for messages and diagnostics.

    Attributes:
        model_name: the model folder's name or the model's own name.
        pruner: selector name (reconpruner, none, ...).
        prune_ratio: fraction of visual tokens dropped (keep ratio = 1 - prune_ratio).
        backend: encoder+pruner backend name.
        image_size: (H, W) the model sees per camera.
        llm_keep: the visual tokens an LLM-stage selector (FastV, SparseVLM) keeps inside the
            planner; None for encoder-stage selectors (the backend's K is what the planner sees).
    """

    model_name: str = "unknown"
    pruner: str = "unknown"
    prune_ratio: float = 0.0
    backend: str = "unknown"
    image_size: tuple[int, int] = (0, 0)
    llm_keep: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def keep_ratio(self) -> float:
        return 1.0 - self.prune_ratio

    def as_values(self) -> dict[str, str]:
        values = {
            "model": self.model_name,
            "pruner": self.pruner,
            "prune_ratio": f"{self.prune_ratio:.3f}",
            "backend": self.backend,
            "image_size": f"{self.image_size[0]}x{self.image_size[1]}",
        }
        values.update(self.extra)
        return values


def default_preprocess(image_size: tuple[int, int], resize: str = "bilinear") -> Preprocess:
    """The preprocessing of training and evaluation (nn/vision.py), fused for the node.

    uint8 resize + table normalisation into a reused buffer, within half an intensity level of
    the reference (pipeline/preprocess.py says why and how much faster). Another `resize` (a
    real checkpoint's resampling, VLAConfig.resize) runs the reference ImagePreprocessor: its
    nearest and 8-bit bicubic steps are what the checkpoint saw in training.
    """
    if resize != "bilinear":
        from fastdrive_ros.nn.vision import ImagePreprocessor

        return ImagePreprocessor(size=image_size, resize=resize)
    from fastdrive_ros.pipeline.preprocess import FusedPreprocessor

    return FusedPreprocessor(size=image_size)


class FramePipeline:
    """Plans frames from six cameras and odometry; see the module docstring."""

    def __init__(
        self,
        *,
        config: PipelineConfig,
        backend: EncoderPrunerBackend,
        planner: Planner,
        clock: Clock | None = None,
        image_size: tuple[int, int],
        preprocess: Preprocess | None = None,
        device: str | torch.device = "cpu",
        info: PipelineInfo | None = None,
        keep_images: bool = False,
        health_clock: Clock | None = None,
    ) -> None:
        if len(image_size) != 2 or min(image_size) <= 0:
            raise ValueError(f"image_size must be (H, W) > 0, got {image_size}")
        self.config = config
        self.backend = backend
        self.planner = planner
        self.clock = clock or SystemClock()
        # Staleness ("no frame planned for N ms") is measured on this clock. The rclpy node gives
        # a steady clock: under use_sim_time, ROS time stops with /clock, and a node that stopped
        # planning because its input stopped must still turn STALE.
        self.health_clock = health_clock or self.clock
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.device = torch.device(device)
        self._preprocess = preprocess or default_preprocess(self.image_size)
        self.info = info or PipelineInfo(image_size=self.image_size, backend=backend.name)
        self.keep_images = keep_images  # put the decoded images in each output (overlays)
        self.counters = Counters()
        self.latency = RollingLatency(window=config.latency_window)
        self._sync = FrameSynchronizer(config=config, counters=self.counters)
        # a JPEG at least twice the model's size decodes at 1/2, 1/4 or 1/8 scale (DCT domain)
        reduce_to = (self.image_size[1], self.image_size[0]) if preprocess is None else None
        self._assembler = FrameAssembler(
            config=config, counters=self.counters, reduce_to=reduce_to
        )
        self._ego = EgoHistory(capacity=config.odom_buffer, wheelbase_m=config.wheelbase_m)
        self._command: DrivingCommand = config.default_command
        # what the planner read of the frames before (a decision reader compares with 0.5 s ago)
        self._memory = FrameMemory()
        self._step_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._frame_event = threading.Event()
        self._started_ns = self.health_clock.now_ns()
        self._last_plan_ns: int | None = None
        self._frame_id = 0
        self._consecutive_failures = 0
        self._last_failure = ""
        self._last_cameras: dict[str, CameraSlotReport] = {}
        self._last_latency: dict[str, float] = {}
        self._drops_at_last_plan = 0
        self._dropped_recent = 0
        self._odometry_status = "no_odometry"
        self._time_jump = ""
        self._log = ThrottledLog(LOG)

    # ---- inputs (thread-safe, cheap) -------------------------------------------------------
    def on_camera(self, frame: CameraFrameIn) -> None:
        """Store one camera image; never decodes, never raises for bad input."""
        result = self._sync.push(frame)
        if result in ("jump_back", "jump_forward"):
            self._on_time_jump("back" if result == "jump_back" else "forward", frame.stamp_ns)
        self._frame_event.set()

    def _on_time_jump(self, direction: str, stamp_ns: int) -> None:
        """The anchor camera started a new timeline (bag loop, source restart, /clock jump).

        Sync has already dropped the old timeline's images. Everything else that belongs to the
        old timeline goes too, so planning carries on at once instead of waiting for time to pass
        the old maximum: last good images, odometry not near the new stamp (odometry that jumped
        first already restarted the history and is kept), and the health state (failure streak,
        camera reports, "since last plan" counts from the jump, so neither a clock that jumped
        forward reads STALE nor one that jumped back hides a stall).
        """
        LOG.warning(
            "camera time jumped %s to %d: sync, ego history and health state reset "
            "(bag loop or source restart?)",
            direction,
            stamp_ns,
        )
        window_ns = int(min(self.config.jump_back_ms, self.config.jump_forward_ms) * 1e6)
        last_odom = self._ego.last_stamp_ns()
        if last_odom is not None and abs(last_odom - stamp_ns) > window_ns:
            self._ego.reset()
            self.counters.inc("time_jump/ego_reset")
        now = self.clock.now_ns()
        with self._state_lock:
            self._time_jump = (
                f"camera time jumped {direction} (bag loop or source restart): "
                "sync, ego history and health state reset"
            )
            self._assembler.reset()
            self._consecutive_failures = 0
            self._last_failure = ""
            self._last_cameras = {}
            self._drops_at_last_plan = self.counters.group_total("dropped")
            self._dropped_recent = 0
            if self._last_plan_ns is not None:
                self._last_plan_ns = now
            else:
                self._started_ns = now

    def on_odometry(self, odom: OdometryIn) -> None:
        """Add an odometry sample; a time jump resets the ego history."""
        self.counters.inc("odometry/received")
        last = self._ego.last_stamp_ns()
        if last is not None:
            back = last - odom.stamp_ns > self.config.jump_back_ms * 1e6
            forward = odom.stamp_ns - last > self.config.jump_forward_ms * 1e6
            if back or forward:
                direction = "back" if back else "forward"
                self.counters.inc(f"time_jump/odometry_{direction}")
                LOG.warning("odometry time jumped %s: ego history reset", direction)
                self._ego.reset()
        if not self._ego.add(odom):
            self.counters.inc("odometry/rejected")

    def on_command(self, command: CommandIn) -> None:
        """Set the driving command used from the next frame on."""
        if command.command not in ("left", "right", "straight"):
            self.counters.inc("rejected/command")
            LOG.warning("ignoring unknown driving command %r", command.command)
            return
        with self._state_lock:
            self._command = command.command

    def wait_for_input(self, timeout_s: float) -> bool:
        """Block until an image arrived since the last call (for worker threads)."""
        arrived = self._frame_event.wait(timeout_s)
        self._frame_event.clear()
        return arrived

    def pending(self) -> int:
        """Anchor images waiting to be planned."""
        return self._sync.pending()

    def queue_lengths(self) -> dict[str, int]:
        """Images held per camera plus odometry samples: all bounded by the config."""
        lengths = self._sync.queue_lengths()
        lengths["odometry"] = len(self._ego)
        return lengths

    # ---- processing ------------------------------------------------------------------------
    def step(self, now_ns: int | None = None) -> PipelineOutput | None:
        """Plan the newest complete frame, if any; None when there is nothing (new) to plan."""
        with self._step_lock:
            now = self.clock.now_ns() if now_ns is None else now_ns
            synced = self._sync.poll(now)
            if synced is None:
                return None
            timer = StageTimer()
            start = time.perf_counter()
            arrived = max(f.received_ns for f in synced.images.values() if f is not None)
            timer.add("queue", max(0.0, (now - arrived) / 1e6))
            with timer.stage("decode"):
                assembled = self._assembler.assemble(synced)
            if isinstance(assembled, DroppedFrame):
                self.counters.inc(f"dropped/{assembled.reason}")
                with self._state_lock:
                    self._last_cameras = assembled.cameras
                self._log.warning(
                    f"dropped/{assembled.reason}",
                    "frame %d dropped: %s",
                    synced.stamp_ns,
                    assembled.detail,
                )
                return None
            with self._state_lock:
                command = self._command
            ego = self._ego.estimate(synced.stamp_ns, command)
            memory = self._memory.at(synced.stamp_ns / 1e9)
            plan, tokens = self._run_models(assembled.images, ego.state, timer, memory)
            latency = timer.ms
            latency["total"] = (time.perf_counter() - start) * 1e3
            frame_age_ms = (self.clock.now_ns() - synced.stamp_ns) / 1e6
            latency["frame_age"] = frame_age_ms
            images = assembled.images if self.keep_images else None
            return self._finish(
                synced.stamp_ns, plan, tokens, latency, assembled.cameras, ego, images
            )

    def _run_models(
        self,
        images: np.ndarray,
        ego: EgoState,
        timer: StageTimer,
        memory: FrameSlot | None = None,
    ) -> tuple[PlanResult, EncoderPrunerOutput | None]:
        """Preprocess, encoder+pruner, planner; any exception becomes a PlanFailure."""
        tokens: EncoderPrunerOutput | None = None
        try:
            with timer.stage("preprocess"):
                batch = torch.from_numpy(images).to(self.device, non_blocking=True)
                pixels = self._preprocess(batch)
            tokens = self.backend.run(pixels)
            for name, ms in tokens.timings_ms.items():
                timer.add(name, ms)
            if not bool(torch.isfinite(tokens.kept_tokens).all()):
                return PlanFailure(
                    "non_finite", "encoder/pruner produced non-finite tokens"
                ), tokens
            with timer.stage("plan"):
                plan = self.planner.plan(
                    kept_tokens=tokens.kept_tokens,
                    kept_index=tokens.kept_index,
                    grid_thw=tokens.grid_thw,
                    ego=ego,
                    max_new_tokens=self.config.max_new_tokens,
                    memory=memory,
                )
        except Exception as exc:  # a model crash must not stop the node: report and go on
            self._log.warning(
                f"raised/{type(exc).__name__}", "model failure on a frame", exc_info=True
            )
            return PlanFailure("no_answer", f"model raised {type(exc).__name__}: {exc}"), tokens
        timer.add("prefill", plan.timings_ms.get("prefill", float("nan")))
        timer.add("decode_tokens", plan.timings_ms.get("decode", float("nan")))
        return _check_plan(plan), tokens

    def _finish(
        self,
        stamp_ns: int,
        plan: PlanResult,
        tokens: EncoderPrunerOutput | None,
        latency: dict[str, float],
        cameras: dict[str, CameraSlotReport],
        ego: EgoEstimate,
        images: np.ndarray | None,
    ) -> PipelineOutput:
        counters = self.counters
        counters.inc("processed")
        if any(report.state != "ok" for report in cameras.values()):
            counters.inc("frames/incomplete")
        with self._state_lock:
            self._frame_id += 1
            frame_id = self._frame_id
            if isinstance(plan, PlanOk):
                counters.inc("planned")
                self._consecutive_failures = 0
            else:
                counters.inc(f"failed/{plan.reason}")
                self._consecutive_failures += 1
                self._last_failure = f"{plan.reason}: {plan.detail}"
                self._log.warning(
                    f"failed/{plan.reason}",
                    "frame %d: plan failed (%s): %s",
                    stamp_ns,
                    plan.reason,
                    plan.detail,
                )
            self._last_plan_ns = self.health_clock.now_ns()
            self._last_cameras = cameras
            self._last_latency = {k: v for k, v in latency.items() if np.isfinite(v)}
            drops = counters.group_total("dropped")
            self._dropped_recent = drops - self._drops_at_last_plan
            self._drops_at_last_plan = drops
            self._odometry_status = ego.status
        self.latency.add(latency)
        health = self.health()
        with self._state_lock:
            self._time_jump = ""  # reported once, with the first plan after the jump
        kept_index = np.zeros(0, np.int64)
        grid = np.zeros((0, 3), np.int64)
        scores = None
        total = 0
        if tokens is not None:
            kept_index = tokens.kept_index.detach().cpu().numpy().astype(np.int64)
            grid = tokens.grid_thw.detach().cpu().numpy().astype(np.int64)
            total = int(sum(int(t * h * w) // 4 for t, h, w in grid))
            if tokens.scores is not None:
                scores = tokens.scores.detach().float().cpu().numpy()
        return PipelineOutput(
            stamp_ns=stamp_ns,
            frame_id=frame_id,
            plan=plan,
            kept_index=kept_index,
            kept_tokens=min(int(kept_index.size), self.info.llm_keep or int(kept_index.size)),
            total_tokens=total,
            grid_thw=grid,
            latency_ms=latency,
            frame_age_ms=latency["frame_age"],
            ego=ego.state,
            cameras=cameras,
            health=health,
            counters=counters.snapshot(),
            scores=scores,
            images=images,
        )

    # ---- health ----------------------------------------------------------------------------
    def health(self, now_ns: int | None = None) -> HealthReport:
        """The current health (see pipeline/health.py for the rules); `now_ns` on health_clock."""
        now = self.health_clock.now_ns() if now_ns is None else now_ns
        with self._state_lock:
            since = self._last_plan_ns if self._last_plan_ns is not None else self._started_ns
            pct = self.latency.percentiles()
            inputs = HealthInputs(
                since_plan_ms=max(0.0, (now - since) / 1e6),
                has_planned=self._last_plan_ns is not None,
                stale_after_ms=self.config.stale_after_ms,
                consecutive_failures=self._consecutive_failures,
                error_after_failures=self.config.error_after_failures,
                last_failure=self._last_failure,
                processing_p50_ms=pct["total"][0] if "total" in pct else None,
                camera_period_ms=self.config.camera_period_ms,
                cameras=dict(self._last_cameras),
                rejects=self._sync.last_rejects(),
                dropped_recent=self._dropped_recent,
                odometry=self._odometry_status,
                time_jump=self._time_jump,
                latency=pct,
                last_latency=dict(self._last_latency),
                counters=self.counters.snapshot(),
                info=self.info.as_values(),
            )
        return assess(inputs)

    def warm_up(self) -> None:
        """Run the models once on black images (first-call allocations, JIT, engine load)."""
        height, width = self.image_size
        images = np.zeros((len(self.config.camera_names), height, width, 3), np.uint8)
        ego = self._ego.estimate(0, self.config.default_command).state
        self._run_models(images, ego, StageTimer())

    def close(self) -> None:
        self.backend.close()


def _check_plan(plan: PlanResult) -> PlanResult:
    """A PlanOk whose waypoints are not (6, 2) finite numbers becomes a PlanFailure."""
    if not isinstance(plan, PlanOk):
        return plan
    waypoints = np.asarray(plan.waypoints, dtype=np.float64)
    if waypoints.shape != (PLAN_STEPS, 2):
        detail = f"planner returned waypoints of shape {waypoints.shape}, need ({PLAN_STEPS}, 2)"
        return PlanFailure("wrong_count", detail, plan.text, plan.timings_ms)
    if not np.all(np.isfinite(waypoints)):
        return PlanFailure(
            "non_finite", "planner returned non-finite waypoints", plan.text, plan.timings_ms
        )
    return plan
