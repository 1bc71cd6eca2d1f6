"""Health rules: OK / WARN / ERROR / STALE from the pipeline's recent state, as plain data.

  STALE  no frame planned within `stale_after_ms` (since the last plan, or since start).
  ERROR  `error_after_failures` consecutive frames failed (planner answer unusable, non-finite
         model output, backend exception).
  WARN   processing slower than the camera period (p50 of "total"), a camera missing, late,
         rejected or substituted in the last frame, frames dropped between the last two plans,
         no or stale odometry, a recent time jump.
  OK     none of the above.
The worst level wins; the message lists every reason, worst first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fastdrive_ros.pipeline.types import CameraSlotReport, HealthLevel, HealthReport


@dataclass(frozen=True)
class HealthInputs:
    """Everything the health rules look at (a snapshot taken by the pipeline).

    Attributes:
        since_plan_ms: time since the last plan (or since start without one).
        has_planned: whether any frame has been planned yet.
        consecutive_failures: failed frames in a row, and `last_failure` says why.
        processing_p50_ms: p50 of the "total" stage (None before the first frame).
        cameras: the camera reports of the last processed frame.
        rejects: channel -> reason of its last rejected image.
        dropped_recent: frames dropped between the last two processed frames.
        odometry: "ok", "no_odometry" or "stale_odometry".
        time_jump: description of a time jump since the last plan ("" if none).
        latency: stage -> (p50, p95) ms.
        last_latency: stage -> ms of the last frame.
        counters: the pipeline counters.
        info: static key-values (model, backend, pruner ...).
    """

    since_plan_ms: float
    has_planned: bool
    stale_after_ms: float
    consecutive_failures: int
    error_after_failures: int
    last_failure: str
    processing_p50_ms: float | None
    camera_period_ms: float
    cameras: Mapping[str, CameraSlotReport]
    rejects: Mapping[str, str]
    dropped_recent: int
    odometry: str
    time_jump: str
    latency: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    last_latency: Mapping[str, float] = field(default_factory=dict)
    counters: Mapping[str, int] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)


def assess(h: HealthInputs) -> HealthReport:
    """Apply the rules of the module docstring."""
    reasons: list[tuple[HealthLevel, str]] = []
    if h.since_plan_ms > h.stale_after_ms:
        what = "since the last plan" if h.has_planned else "since start (nothing planned yet)"
        reasons.append(
            (HealthLevel.STALE, f"no frame planned for {h.since_plan_ms:.0f} ms {what}")
        )
    if h.consecutive_failures >= h.error_after_failures:
        reasons.append(
            (
                HealthLevel.ERROR,
                f"{h.consecutive_failures} consecutive failed frames (last: {h.last_failure})",
            )
        )
    if h.processing_p50_ms is not None and h.processing_p50_ms > h.camera_period_ms:
        reasons.append(
            (
                HealthLevel.WARN,
                f"processing {h.processing_p50_ms:.0f} ms (p50) exceeds the camera period "
                f"{h.camera_period_ms:.0f} ms",
            )
        )
    for name, report in h.cameras.items():
        if report.state != "ok":
            reasons.append((HealthLevel.WARN, f"{name} {report.state}: {report.reason}"))
    for name, reason in h.rejects.items():
        if name not in h.cameras or h.cameras[name].state == "ok":
            reasons.append((HealthLevel.WARN, f"{name} image rejected: {reason}"))
    if h.dropped_recent > 0:
        reasons.append((HealthLevel.WARN, f"{h.dropped_recent} frames dropped since last plan"))
    if h.odometry == "no_odometry":
        reasons.append((HealthLevel.WARN, "no odometry: planning with a standing-still history"))
    elif h.odometry == "stale_odometry":
        reasons.append((HealthLevel.WARN, "odometry is stale"))
    if h.time_jump:
        reasons.append((HealthLevel.WARN, h.time_jump))
    level = max((lvl for lvl, _ in reasons), default=HealthLevel.OK)
    reasons.sort(key=lambda r: -int(r[0]))
    message = "; ".join(text for _, text in reasons) if reasons else "planning normally"
    return HealthReport(level=level, message=message, values=_values(h))


def _values(h: HealthInputs) -> dict[str, str]:
    values: dict[str, str] = dict(h.info)
    for stage, ms in h.last_latency.items():
        values[f"{stage}_ms"] = f"{ms:.2f}"
    for stage, pct in h.latency.items():
        values[f"{stage}_ms_p50"] = f"{pct[0]:.2f}"
        if len(pct) > 1:
            values[f"{stage}_ms_p95"] = f"{pct[1]:.2f}"
    for name, count in h.counters.items():
        values[name] = str(count)
    for name, report in h.cameras.items():
        text = report.state if not report.reason else f"{report.state} ({report.reason})"
        values[f"camera/{name}"] = text
    values["odometry"] = h.odometry
    values["since_last_plan_ms"] = f"{h.since_plan_ms:.0f}"
    values["consecutive_failures"] = str(h.consecutive_failures)
    return values
