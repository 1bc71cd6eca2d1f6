"""Can this benchmark tell token sets apart? Probe differences with scene-bootstrap intervals.

- content effect: L2 Avg with another scene's tokens (`shuffled`) minus with the frame's own
  (unpruned). > 0 with an interval excluding 0 means the planner reads what the images show.
- image effect: `no_images` minus own (how much the planner leans on having tokens at all).
- oracle gap at each prune ratio: `anti_oracle` (background only) minus `oracle_fg` (foreground
  only). > 0, excluding 0, means which tokens are kept matters, i.e. a pruning ranking can mean
  something.

Each is computed on all keyframes and on the keyframes with a camera-visible event
(events.VISIBLE_EVENT_GROUPS), where the cameras should matter most. The benchmark is said to
discriminate when the content effect and the oracle gap at the largest evaluated ratio both
have intervals above 0 on all keyframes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastdrive_ros.eval.bootstrap import collision_avg, l2_avg, paired_l2_difference
from fastdrive_ros.eval.events import EVENT_GROUPS, VISIBLE_EVENT_GROUPS

OWN = "none@0"


def _key(pruner: str, ratio: float) -> str:
    return f"{pruner}@{ratio:g}"


def by_event(
    l2: np.ndarray, events: Sequence[str], collision: np.ndarray | None = None
) -> dict[str, dict[str, Any]]:
    """{group: {"samples": n, "l2_avg": metres or None}} for every EVENT_GROUPS entry.

    With `collision` ([S, 6] per-step 0 / 1, NaN = not counted, like `l2`) each group also gets
    "collision_avg": the evaluation's collision Avg in percent (the same cumulative means as
    L2 Avg), so a plan that runs into a standing car shows where it does.
    """
    events = np.asarray(events, dtype=object)
    out: dict[str, dict[str, Any]] = {}
    for group in (*EVENT_GROUPS, "visible_events"):
        mask = (
            np.isin(events, VISIBLE_EVENT_GROUPS)
            if group == "visible_events"
            else (events == group)
        )
        out[group] = {"samples": int(mask.sum()), "l2_avg": _masked(l2_avg, l2, mask)}
        if collision is not None:
            out[group]["collision_avg"] = _masked(collision_avg, collision, mask)
    return out


def _masked(
    average: Callable[[np.ndarray], float], steps: np.ndarray, mask: np.ndarray
) -> float | None:
    """`average` of the masked samples' step values; None where nothing counts."""
    value = average(steps[mask]) if mask.any() else float("nan")
    return value if np.isfinite(value) else None


def discrimination(
    scores: dict[str, np.ndarray],
    scenes: Sequence[str],
    events: Sequence[str],
    *,
    draws: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The probe differences present in `scores` ({"pruner@ratio": [S, 6] step errors})."""
    visible = np.isin(np.asarray(events, dtype=object), VISIBLE_EVENT_GROUPS)
    comparisons: list[tuple[str, str, str]] = []
    if OWN in scores:
        for probe, name in (("shuffled", "content_effect"), ("no_images", "image_effect")):
            if _key(probe, 0.0) in scores:
                comparisons.append((name, _key(probe, 0.0), OWN))
    ratios = sorted(
        float(k.split("@")[1]) for k in scores if k.startswith("oracle_fg@") and k != "oracle_fg@0"
    )
    for ratio in ratios:
        if _key("anti_oracle", ratio) in scores:
            comparisons.append(
                (f"oracle_gap@{ratio:g}", _key("anti_oracle", ratio), _key("oracle_fg", ratio))
            )
    out: dict[str, Any] = {"draws": draws, "seed": seed, "resampled_unit": "scene"}
    for name, worse, better in comparisons:
        entry: dict[str, Any] = {"worse": worse, "better": better}
        for subset_name, subset in (("all", None), ("visible_events", visible)):
            if subset is not None and not subset.any():
                entry[subset_name] = None
                continue
            entry[subset_name] = paired_l2_difference(
                scores[worse], scores[better], scenes, subset=subset, draws=draws, seed=seed
            ).to_json()
        out[name] = entry
    out["verdict"] = verdict(out)
    return out


def _interval_text(data: dict[str, Any] | None) -> str:
    if data is None:
        return "no keyframe"
    return (
        f"{100 * data['estimate']:+.1f} cm [{100 * data['low']:+.1f}, {100 * data['high']:+.1f}]"
        + (
            ""
            if data.get("relative") is None
            else f" = {data['relative']:+.1f} % [{data['relative_low']:+.1f}, "
            f"{data['relative_high']:+.1f}]"
        )
    )


def verdict(result: dict[str, Any]) -> str:
    """One sentence saying whether the benchmark discriminates on this dataset (intervals)."""
    content = result.get("content_effect")
    gaps = sorted(k for k in result if k.startswith("oracle_gap@"))
    if content is None or not gaps:
        return (
            "Not established: evaluate the probes shuffled, oracle_fg and anti_oracle (ratio 0 "
            "and a pruned ratio) to learn whether this benchmark can tell token sets apart."
        )
    gap_key = max(gaps, key=lambda k: float(k.split("@")[1]))
    gap = result[gap_key]
    content_ok = above_zero(content["all"])
    gap_ok = above_zero(gap["all"])
    figures = (
        f"content effect (shuffled - own) {_interval_text(content['all'])}, oracle gap at "
        f"{100 * float(gap_key.split('@')[1]):.0f} % pruned (anti_oracle - oracle_fg) "
        f"{_interval_text(gap['all'])}, 95 % scene-bootstrap intervals"
    )
    if content_ok and gap_ok:
        return f"The benchmark discriminates on this dataset: {figures} both exclude 0."
    missing = [n for n, ok in (("content effect", content_ok), ("oracle gap", gap_ok)) if not ok]
    # an interval entirely below 0 is not "no effect": the probe ranks the wrong way round
    reversed_ = [
        text
        for data, text in (
            (content["all"], "another scene's tokens plan better than the frame's own"),
            (gap["all"], "background-only tokens plan better than foreground-only"),
        )
        if below_zero(data)
    ]
    note = f" ({'; '.join(reversed_)})" if reversed_ else ""
    return (
        f"The benchmark does NOT discriminate on this dataset ({' and '.join(missing)} not above "
        f"0{note}): {figures}; pruning rankings on it are not evidence."
    )


def above_zero(data: dict[str, Any] | None) -> bool:
    """True when a difference's 95 % interval lies entirely above 0."""
    return data is not None and data["low"] > 0


def below_zero(data: dict[str, Any] | None) -> bool:
    """True when a difference's 95 % interval lies entirely below 0 (the wrong way round)."""
    return data is not None and data["high"] < 0
