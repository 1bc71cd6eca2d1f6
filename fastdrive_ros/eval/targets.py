"""The issue's quality and speed targets, checked on one evaluation run (met / not met, figures).

1. The unpruned model clearly beats the constant-velocity reference on L2 Avg: "clearly" = at
   least CLEAR_MARGIN (10 %) lower.
2. ReconPruner at 50 % pruning stays within 3 % of the unpruned L2 Avg (rel_l2 <= 103 %).
3. At 75 % pruning ReconPruner is at least as good as every baseline on L2 Avg and collision Avg.
4. Prefill with 25 % of the visual tokens (75 % pruned, an encoder-stage pruner, ReconPruner when
   present) is at least 3.5x faster than with all of them, in the same run.
A target whose rows were not evaluated is reported as "not evaluated" with the reason.
"""

from __future__ import annotations

from typing import Any

from fastdrive_ros.eval.records import EvalRecord, EvalResults
from fastdrive_ros.nn.registry import PROBE_NAMES

CLEAR_MARGIN = 0.10
MAX_REL_L2_AT_HALF = 103.0
MIN_PREFILL_SPEEDUP = 3.5
MAIN = "reconpruner"


def _target(name: str, status: str, detail: str) -> dict[str, Any]:
    return {"target": name, "status": status, "detail": detail}


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


def _cv_target(results: EvalResults, unpruned: EvalRecord | None) -> dict[str, Any]:
    name = "unpruned beats constant velocity on L2 Avg by >= 10 %"
    cv = results.reference("constant_velocity")
    a = None if unpruned is None else unpruned.metric("l2")
    b = None if cv is None else cv.metric("l2")
    if a is None or b is None:
        return _target(name, "not evaluated", "needs the unpruned and constant-velocity rows")
    met = a <= (1.0 - CLEAR_MARGIN) * b
    ratio = f" ({a / b:.1%} of it)" if b > 1e-6 else ""
    detail = f"unpruned {_fmt(a, ' m')} vs constant velocity {_fmt(b, ' m')}{ratio}"
    return _target(name, "met" if met else "not met", detail)


def _half_target(results: EvalResults, unpruned: EvalRecord | None) -> dict[str, Any]:
    name = "ReconPruner at 50 % within 3 % of unpruned L2 Avg"
    row = results.find(MAIN, 0.5)
    if row is None or unpruned is None or row.rel_l2 is None:
        return _target(
            name, "not evaluated", "needs reconpruner at ratio 0.5 and a non-zero unpruned L2"
        )
    detail = (
        f"{_fmt(row.metric('l2'), ' m')} vs unpruned {_fmt(unpruned.metric('l2'), ' m')} "
        f"= {row.rel_l2:.1f} % (limit {MAX_REL_L2_AT_HALF:.0f} %)"
    )
    return _target(name, "met" if row.rel_l2 <= MAX_REL_L2_AT_HALF else "not met", detail)


def _best_at_75(results: EvalResults) -> dict[str, Any]:
    name = "ReconPruner at 75 % at least as good as every baseline on L2 Avg and collision Avg"
    row = results.find(MAIN, 0.75)
    others = [
        r
        for r in results.records
        if r.prune_ratio == 0.75
        and r.pruner not in (MAIN, "none", *PROBE_NAMES)  # probes are yardsticks, not rivals
        and r.shared_with is None
    ]
    if row is None or not others:
        return _target(name, "not evaluated", "needs reconpruner and a baseline at ratio 0.75")
    losses = []
    for other in others:
        for metric in ("l2", "collision"):
            mine, theirs = row.metric(metric), other.metric(metric)
            if mine is not None and theirs is not None and mine > theirs:
                losses.append(f"{other.pruner} {metric} {_fmt(theirs)} < {_fmt(mine)}")
    detail = (
        f"reconpruner L2 {_fmt(row.metric('l2'), ' m')}, collision "
        f"{_fmt(row.metric('collision'), ' %')}; baselines: "
        + ", ".join(
            f"{o.pruner} {_fmt(o.metric('l2'), ' m')}/{_fmt(o.metric('collision'), ' %')}"
            for o in others
        )
    )
    if losses:
        detail += "; beaten by: " + "; ".join(losses)
    return _target(name, "not met" if losses else "met", detail)


def _prefill_target(results: EvalResults, unpruned: EvalRecord | None) -> dict[str, Any]:
    name = "prefill at 25 % of tokens >= 3.5x faster than at 100 %"
    candidates = [
        r
        for r in results.records
        if r.prune_ratio == 0.75 and r.stage == "encoder" and r.pruner not in PROBE_NAMES
    ]
    row = next((r for r in candidates if r.pruner == MAIN), candidates[0] if candidates else None)
    if row is None or unpruned is None or not row.prefill_ms or not unpruned.prefill_ms:
        return _target(name, "not evaluated", "needs an encoder-stage pruner at ratio 0.75")
    speedup = unpruned.prefill_ms / row.prefill_ms
    detail = (
        f"{unpruned.prefill_ms:.1f} ms at {unpruned.kept_tokens} tokens -> "
        f"{row.prefill_ms:.1f} ms at {row.kept_tokens} ({row.pruner}): {speedup:.2f}x"
    )
    return _target(name, "met" if speedup >= MIN_PREFILL_SPEEDUP else "not met", detail)


def check_targets(results: EvalResults) -> list[dict[str, Any]]:
    """The four targets: [{"target", "status": met | not met | not evaluated, "detail"}]."""
    unpruned = results.unpruned
    return [
        _cv_target(results, unpruned),
        _half_target(results, unpruned),
        _best_at_75(results),
        _prefill_target(results, unpruned),
    ]
