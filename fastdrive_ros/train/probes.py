"""Does the planner read the cameras? Issue 8's quick probes, in both ego-input settings.

For every keyframe of a held-out set the planner plans with (a) its own visual tokens, (b) the
tokens of a keyframe from ANOTHER scene (fixed pairing by seed) and (c) no visual token, once with
the full ego status and once restricted to the minimal one (command + speed). Next to them: the
kinematic prior alone (CTRA from the full status, constant velocity from the minimal one), which a
residual planner starts from. The content effect is L2(shuffled) / L2(own) - 1, overall and on the
event keyframes (the full status' prior misses +3 s by > 1 m: train/planner.event_keyframes), with
a 95 % interval from a bootstrap that resamples scenes, not keyframes (keyframes of one scene are
not independent). A pruning comparison means something only where these separate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fastdrive_ros.core_types import EGO_INPUTS, restrict_ego
from fastdrive_ros.eval.bootstrap import scene_weights
from fastdrive_ros.eval.pairing import partner_indices
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.train.planner import HORIZON_STEPS, event_keyframes
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.token_cache import TokenCache

VARIANTS = ("own", "shuffled", "none", "prior")


def sample_l2_avg(pred: np.ndarray, future: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B,) L2 Avg per keyframe: the mean over 1/2/3 s of the cumulative mean L2 (metres)."""
    dist = np.linalg.norm(pred - np.nan_to_num(future), axis=-1)  # (B, 6)
    parts = []
    for steps in HORIZON_STEPS.values():
        mask = valid[:, :steps].astype(float)
        parts.append((dist[:, :steps] * mask).sum(1) / np.maximum(mask.sum(1), 1.0))
    return np.mean(parts, axis=0)


def other_scene_pairing(scenes: Sequence[str], seed: int = 0) -> np.ndarray:
    """(R,) for each keyframe the index of a keyframe of another scene (never its own).

    The same seeded scene derangement as `fastdrive eval`'s `shuffled` probe (eval/pairing.py),
    so the build's probe and the evaluation's measure the same thing.
    """
    return np.asarray(partner_indices(scenes, seed), dtype=np.int64)


def scene_bootstrap(
    own: np.ndarray, other: np.ndarray, scenes: Sequence[str], *, draws: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(effect, low, high): sum(other) / sum(own) - 1 and its 95 % interval over scenes."""
    weights = scene_weights(scenes, draws, seed)  # [draws, R], eval/bootstrap.py's resampling
    ratios = (weights @ other) / np.maximum(weights @ own, 1e-9) - 1.0
    effect = float(other.sum() / max(own.sum(), 1e-9) - 1.0)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return effect, float(low), float(high)


@torch.no_grad()
def planner_probes(
    *,
    planner: VLAPlanner,
    cache: TokenCache,
    records: Sequence[KeyframeRecord],
    settings: Sequence[str] = EGO_INPUTS,
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """{setting: figures} for each ego-input setting (see the module docstring).

    Figures: L2 Avg (m) of own / shuffled / no tokens and of the prior, overall and on event
    keyframes, and the content effect with its scene-bootstrap interval.
    """
    if len(cache) != len(records):
        raise ValueError("the cache must be built from these records")
    planner.eval()
    count, grid, width = len(records), cache.grid_thw, cache.spec.width
    scenes = [r.scene for r in records]
    pair = other_scene_pairing(scenes, seed)
    events = event_keyframes(records)
    future = np.stack([r.future_xy for r in records])
    valid = np.stack([r.future_valid for r in records])
    out: dict[str, dict[str, float]] = {}
    for setting in settings:
        egos = [restrict_ego(r.ego, setting) for r in records]  # type: ignore[arg-type]
        preds = {v: np.zeros((count, 6, 2)) for v in VARIANTS}
        preds["prior"] = np.stack([kinematic_prior(e) for e in egos])
        for start in range(0, count, batch_size):
            idx = list(range(start, min(count, start + batch_size)))
            variants = {
                "own": [cache.tokens(i).float() for i in idx],
                "shuffled": [cache.tokens(int(pair[i])).float() for i in idx],
                "none": [torch.zeros(0, width) for _ in idx],
            }
            for name, tokens in variants.items():
                pred = planner.forward_regression(
                    visual_tokens=tokens,
                    kept_index=[torch.arange(t.shape[0]) for t in tokens],
                    grid_thw=grid,
                    egos=[egos[i] for i in idx],
                )
                preds[name][idx] = pred.float().numpy()
        l2 = {v: sample_l2_avg(p, future, valid) for v, p in preds.items()}
        figures: dict[str, float] = {"keyframes": count, "event_keyframes": int(events.sum())}
        for v in VARIANTS:
            figures[f"l2_{v}"] = float(l2[v].mean())
            figures[f"l2_{v}_events"] = float(l2[v][events].mean()) if events.any() else np.nan
        for tag, mask in (("", np.ones(count, bool)), ("_events", events)):
            if mask.sum() and len({s for s, m in zip(scenes, mask) if m}) >= 2:
                picked = [s for s, m in zip(scenes, mask) if m]
                effect, low, high = scene_bootstrap(
                    l2["own"][mask], l2["shuffled"][mask], picked, seed=seed
                )
                figures[f"content_effect{tag}"] = effect
                figures[f"content_effect{tag}_low"] = low
                figures[f"content_effect{tag}_high"] = high
        out[setting] = figures
    return out
