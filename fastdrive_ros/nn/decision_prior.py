"""The read decision as a physically shaped path: the kinematic prior driven by it.

A planner that gets the driver's decided acceleration only as one number added into its <plan>
embedding barely moves with it: after a fine-tune, handing it -3 instead of +1 m/s^2 moved its
plan 0.25 m at 3 s (issue 8), where braking that hard moves a car metres. Here the decision
shapes the path the regression head predicts a residual over: the kinematic prior of the ego
status (ego_encoder.kinematic_prior) with the decision in its acceleration, the speed held at
0 once the ego stops. Two forms: "added" puts `gain x decision` on top of the measured
acceleration; "toward" moves the acceleration a share `gain` of the way from the measured one to
the decision. They agree with the minimal ego inputs (no measured acceleration); with the full
ones the measured acceleration lags the decision by the driver's reaction, so adding both counts
the reaction twice. The gain, one per ego-input setting, is fitted on the training world
(train/decision_prior.py), since a reader's decision is a noisy estimate that should move the
plan only as far as it is worth. A reader with pace trees (nn/decision_reader.py) gives the
full-status prior its pace instead of the decision: what to hold for 3 s, read with the status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from fastdrive_ros.core_types import EGO_INPUTS, EgoState
from fastdrive_ros.nn.ego_encoder import prior_batch

DECISION_FORMS = ("added", "toward")


def check_gains(gains: Mapping[str, float]) -> dict[str, float]:
    """{setting: gain} for every ego-input setting, finite; a clear error otherwise."""
    missing = [s for s in EGO_INPUTS if s not in gains]
    extra = [s for s in gains if s not in EGO_INPUTS]
    if missing or extra:
        raise ValueError(
            f"decision gains need exactly the settings {EGO_INPUTS}: missing {missing}, "
            f"unknown {extra}"
        )
    out = {s: float(gains[s]) for s in EGO_INPUTS}
    bad = {s: g for s, g in out.items() if not math.isfinite(g)}
    if bad:
        raise ValueError(f"decision gains must be finite, got {bad}")
    return out


def check_form(form: str) -> str:
    """`form` if it is one of DECISION_FORMS; a clear error otherwise."""
    if form not in DECISION_FORMS:
        raise ValueError(f"decision form must be one of {DECISION_FORMS}, got {form!r}")
    return form


def added_acceleration(gain: float, decision: float, ego: EgoState, form: str) -> float:
    """What the prior adds to `ego`'s acceleration for a read `decision` (m/s^2)."""
    if form == "toward" and ego.inputs == "full":
        return gain * (decision - ego.acceleration)
    return gain * decision  # the minimal status measures no acceleration: the forms agree


def prior_target(ego: EgoState, decision: float, pace: float) -> float:
    """What `ego`'s prior is driven toward: the pace with the full status where one was read."""
    return pace if ego.inputs == "full" and math.isfinite(pace) else decision


class DecisionPrior:
    """Egos + decisions [B] (m/s^2) (+ paces [B]) -> [B, 6, 2] priors driven by them.

    Full-status samples with a finite pace are driven by it instead of the decision.
    """

    def __init__(self, gains: Mapping[str, float], form: str = "added") -> None:
        self.gains = check_gains(gains)
        self.form = check_form(form)

    def added_accelerations(
        self, egos: Sequence[EgoState], decision: torch.Tensor, pace: torch.Tensor | None = None
    ) -> list[float]:
        """The acceleration each sample's prior adds (its setting's gain, this form)."""
        for name, values in (("decision", decision), ("pace", pace)):
            if values is not None and values.shape != (len(egos),):
                raise ValueError(
                    f"need one {name} per sample: {tuple(values.shape)} for {len(egos)} egos"
                )
        decisions = decision.detach().double().cpu().tolist()  # a fixed transform, not trained
        paces = [math.nan] * len(egos) if pace is None else pace.detach().double().cpu().tolist()
        return [
            added_acceleration(self.gains[ego.inputs], prior_target(ego, d, p), ego, self.form)
            for ego, d, p in zip(egos, decisions, paces)
        ]

    def __call__(
        self,
        egos: Sequence[EgoState],
        decision: torch.Tensor,
        device: torch.device,
        pace: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return prior_batch(egos, device, self.added_accelerations(egos, decision, pace))
