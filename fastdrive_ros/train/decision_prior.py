"""Fitting the decision prior's gains (nn/decision_prior.py) on the training world.

The gain says how far a read decision should move the plan: 1 would trust the reader as if it
were the driver's own decision, 0 ignores it. A reader's estimate is noisy, so the best gain is
below 1; it is fitted per ego-input setting (CTRA already carries the measured acceleration, the
minimal prior none) by minimising the evaluation's L2 Avg (eval/bootstrap.l2_avg: early steps
weigh more than a plain mean over steps; fitting that mean cost 0.7 cm of L2 Avg on the
held-out worlds) of the driven prior against the recorded futures. What each setting's prior is
driven toward comes from the planner's own reading, every token kept, with the keyframe 0.5 s
before in memory, as it plans in the node and the evaluation: the decision, or with the full
status the pace where the reader reads one (nn/decision_prior.prior_target). Fit on keyframes
the reader was not fitted on, or the gain trusts its in-sample precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from fastdrive_ros.core_types import EGO_INPUTS, PLAN_STEPS, restrict_ego
from fastdrive_ros.eval.bootstrap import l2_avg
from fastdrive_ros.nn.decision_prior import added_acceleration, prior_target
from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.train.pace import prior_misses
from fastdrive_ros.train.records import KeyframeRecord, previous_rows
from fastdrive_ros.train.token_cache import TokenCache

GAIN_BOUNDS = (0.0, 2.0)  # beyond 2 the plan would brake harder than the decision read


@torch.no_grad()
def read_decisions(
    planner: VLAPlanner,
    cache: TokenCache,
    records: Sequence[KeyframeRecord],
    chain: Mapping[str, str],
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """{setting: [S]} what each setting's prior is driven toward on each cached keyframe (m/s^2).

    The planner's scene reader reads the records' (full) egos: the minimal setting takes its
    decision, the full one its pace where the reader reads one, else the decision.
    """
    if planner.scene_reader is None:
        raise ValueError("the planner has no scene reader: it reads no decision")
    if len(cache) != len(records):
        raise ValueError(f"token cache holds {len(cache)} samples for {len(records)} records")
    before = previous_rows(records, chain)
    grid = cache.grid_thw
    device = planner.model.embed_tokens.weight.device
    decisions: list[np.ndarray] = []
    paces: list[np.ndarray] = []
    for start in range(0, len(records), batch_size):
        rows = range(start, min(start + batch_size, len(records)))
        tokens = [cache.tokens(i).to(device, torch.float32) for i in rows]
        index = [torch.arange(t.shape[0]) for t in tokens]
        previous = None
        if planner.decision_reader is not None:
            earlier = [
                None if before[i] == i else cache.tokens(int(before[i])).to(device, torch.float32)
                for i in rows
            ]
            previous = planner.previous_corridors(earlier, index, grid)
        read = planner.read_scene(tokens, index, grid, [records[i].ego for i in rows], previous)
        assert read is not None
        facts = read[1]
        decisions.append(facts.decision.double().cpu().numpy())
        pace = facts.pace
        paces.append(np.full(len(rows), np.nan) if pace is None else pace.double().cpu().numpy())
    decision, pace = np.concatenate(decisions), np.concatenate(paces)
    targets = {}
    for setting in EGO_INPUTS:
        egos = [restrict_ego(r.ego, setting) for r in records]
        targets[setting] = np.array(
            [prior_target(e, d, p) for e, d, p in zip(egos, decision, pace, strict=True)]
        )
    return targets


def prior_l2(records: Sequence[KeyframeRecord], added: np.ndarray, setting: str) -> float:
    """L2 Avg (m, the evaluation's) of each record's driven prior in `setting`."""
    errors = np.full((len(records), PLAN_STEPS), np.nan)
    for row, (record, acceleration) in enumerate(zip(records, added, strict=True)):
        ego = restrict_ego(record.ego, setting)
        errors[row] = prior_misses(ego, acceleration, record.future_xy, record.future_valid)
    return l2_avg(errors)


def fit_decision_gains(
    records: Sequence[KeyframeRecord],
    decisions: Mapping[str, np.ndarray] | np.ndarray,
    form: str = "added",
) -> dict[str, dict[str, float]]:
    """{setting: {"gain", "l2_kinematic", "l2_driven"}}: the gain minimising prior_l2.

    decisions: {setting: [S]} what each setting's prior is driven toward (`read_decisions`),
    or one [S] array for both; form: the decision prior's ("added" / "toward",
    nn/decision_prior.py).
    """
    if not isinstance(decisions, Mapping):
        decisions = {setting: decisions for setting in EGO_INPUTS}
    fits: dict[str, dict[str, float]] = {}
    for setting in EGO_INPUTS:
        if setting not in decisions:
            raise ValueError(f"no decisions for the {setting} ego inputs")
        read = np.asarray(decisions[setting], dtype=np.float64)
        if read.shape != (len(records),) or not np.isfinite(read).all():
            raise ValueError(
                f"need one finite decision per record for the {setting} ego inputs: "
                f"{read.shape}, {len(records)}"
            )
        # what one unit of gain adds to each record's acceleration in this setting
        unit = np.array(
            [
                added_acceleration(1.0, d, restrict_ego(r.ego, setting), form)
                for r, d in zip(records, read, strict=True)
            ]
        )
        best = minimize_scalar(
            lambda gain, s=setting, u=unit: prior_l2(records, gain * u, s),
            bounds=GAIN_BOUNDS,
            method="bounded",
            options={"xatol": 1e-3},
        )
        fits[setting] = {
            "gain": round(float(best.x), 4),
            "l2_kinematic": prior_l2(records, 0.0 * read, setting),
            "l2_driven": float(best.fun),
        }
    return fits
