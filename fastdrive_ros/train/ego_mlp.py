"""Training the ego-only reference planner (nn/ego_mlp.py): examples, the fit, a bundle's pair.

The model, its features and its file format live in nn/ so that a planner can use it as the
prior it predicts a residual over (VLAConfig.waypoint_prior = "ego_mlp").
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastdrive_ros.core_types import EGO_INPUTS, PLAN_STEPS, EgoInputs, EgoState, restrict_ego
from fastdrive_ros.nn.ego_mlp import (
    EgoMLP,
    ego_features,
    ego_mlp_path,
    kinematic_prior,
)

__all__ = [
    "EgoExample",
    "EgoMLP",
    "EgoMLPConfig",
    "bundle_mlp_config",
    "cross_fitted_plans",
    "cross_fitted_prior_shift",
    "ego_mlp_path",
    "train_bundle_ego_mlps",
    "train_ego_mlp",
]


@dataclass(frozen=True)
class EgoExample:
    """One training keyframe: ego status and the logged future (NaN / invalid steps ignored)."""

    ego: EgoState
    future_xy: np.ndarray
    future_valid: np.ndarray


@dataclass(frozen=True)
class EgoMLPConfig:
    hidden: int = 128
    epochs: int = 300
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


def _tensors(
    examples: Sequence[EgoExample], inputs: EgoInputs
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features [S, F], residual targets [S, 6, 2] (0 where invalid), valid [S, 6])."""
    feats, targets, valids = [], [], []
    for ex in examples:
        valid = np.asarray(ex.future_valid, dtype=bool) & np.isfinite(ex.future_xy).all(axis=1)
        residual = np.nan_to_num(np.asarray(ex.future_xy, dtype=np.float64)) - kinematic_prior(
            ex.ego, inputs
        )
        feats.append(ego_features(ex.ego, inputs))
        targets.append(np.where(valid[:, None], residual, 0.0))
        valids.append(valid)
    return (
        torch.as_tensor(np.stack(feats), dtype=torch.float32),
        torch.as_tensor(np.stack(targets), dtype=torch.float32),
        torch.as_tensor(np.stack(valids)),
    )


def l2_avg(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> float:
    """The evaluation's L2 Avg (mean of the cumulative 1/2/3 s means, valid steps only), metres."""
    dist = torch.linalg.norm(pred - target, dim=-1) * valid
    out = []
    for steps in (2, 4, 6):
        count = valid[:, :steps].sum()
        out.append(float(dist[:, :steps].sum() / count) if count else float("nan"))
    return float(np.mean(out))


def train_ego_mlp(
    examples: Sequence[EgoExample], inputs: EgoInputs, config: EgoMLPConfig = EgoMLPConfig()
) -> tuple[EgoMLP, dict]:
    """Fit an EgoMLP on `examples`; returns it and a summary (train L2 Avg of prior and MLP)."""
    if len(examples) < 2:
        raise ValueError(f"need at least two training keyframes, got {len(examples)}")
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    x, y, valid = _tensors(examples, inputs)
    model = EgoMLP(inputs, hidden=config.hidden)
    model.feature_mean.copy_(x.mean(0))
    # constant features (a command never seen) would divide by 0: treat them as unit scale
    std = x.std(0)
    model.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, -(-len(x) // config.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), config.batch_size):
            idx = order[i : i + config.batch_size]
            pred = model(x[idx])
            # mean Euclidean error over valid steps: the metric itself (smoothed at 0)
            dist = torch.sqrt(((pred - y[idx]) ** 2).sum(-1) + 1e-6)
            loss = (dist * valid[idx]).sum() / valid[idx].sum().clamp(min=1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    with torch.no_grad():
        fitted = model(x)
    summary = {
        "inputs": inputs,
        "samples": len(examples),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_l2_avg_prior": l2_avg(torch.zeros_like(y), y, valid),
        "train_l2_avg": l2_avg(fitted, y, valid),
        "seconds": round(time.perf_counter() - start, 2),
        "config": config.__dict__,
    }
    return model, summary


def train_bundle_ego_mlps(
    examples: Sequence[EgoExample],
    bundle: str | Path,
    *,
    config: EgoMLPConfig = EgoMLPConfig(),
    settings: Sequence[EgoInputs] = ("full", "minimal"),
    source: dict | None = None,
) -> dict[str, dict]:
    """Train one ego MLP per input setting and save each into `bundle`/ego_mlp/."""
    out = {}
    for inputs in settings:
        model, summary = train_ego_mlp(examples, inputs, config)
        summary["source"] = source or {}
        path = model.save(ego_mlp_path(bundle, inputs), **summary)
        out[inputs] = {**summary, "path": str(path)}
    return out


def cross_fitted_plans(
    examples: Sequence[EgoExample],
    groups: Sequence[str],
    inputs: EgoInputs,
    config: EgoMLPConfig,
    folds: int,
) -> np.ndarray:
    """[N, 6, 2] each example's plan from an ego MLP fitted without its group (its scene).

    A model's plans on its own training keyframes are fits, not predictions (the full-setting MLP
    of the default build: 11.7 cm on its keyframes, 45 cm held out). Whatever is trained on top of
    them should see the errors it will meet: these are the held-out plans of `folds` MLPs, each
    fitted with `config` on the other folds' groups (groups dealt to folds by a seeded shuffle).
    """
    names = sorted(set(groups))
    if not 2 <= folds <= len(names):
        raise ValueError(f"need 2 <= folds <= {len(names)} groups (scenes), got {folds}")
    order = np.random.default_rng(config.seed).permutation(len(names))
    fold_of = {names[i]: rank % folds for rank, i in enumerate(order)}
    plans = np.zeros((len(examples), PLAN_STEPS, 2))
    for fold in range(folds):
        held = [i for i, g in enumerate(groups) if fold_of[g] == fold]
        kept = [ex for ex, g in zip(examples, groups) if fold_of[g] != fold]
        model, _ = train_ego_mlp(kept, inputs, config)
        for i in held:
            plans[i] = model.plan(restrict_ego(examples[i].ego, inputs))
    return plans


def bundle_mlp_config(bundle: str | Path, inputs: EgoInputs) -> EgoMLPConfig:
    """The EgoMLPConfig a bundle's ego MLP for `inputs` was trained with (its saved metadata)."""
    saved = EgoMLP.metadata(ego_mlp_path(bundle, inputs)).get("config") or {}
    fields = EgoMLPConfig.__dataclass_fields__
    return EgoMLPConfig(**{k: v for k, v in saved.items() if k in fields})


def cross_fitted_prior_shift(
    bundle: str | Path, examples: Mapping[str, tuple[EgoExample, str]], folds: int
) -> dict[str, dict[EgoInputs, np.ndarray]]:
    """Per keyframe token and setting, the bundle's ego-MLP plan minus the cross-fitted one.

    A planner over the ego-MLP prior (nn/ego_mlp.EgoPrior) trained on the keyframes the prior was
    fitted on sees residuals that are noise it cannot learn (stacking's leak). Adding this shift
    to a keyframe's target makes the planner's training residual the one over the cross-fitted
    prior, while the prior it carries (and plans with) stays the bundle's. `examples`: token ->
    (example, its scene).
    """
    tokens = list(examples)
    exs = [examples[t][0] for t in tokens]
    groups = [examples[t][1] for t in tokens]
    shifts: dict[str, dict[EgoInputs, np.ndarray]] = {t: {} for t in tokens}
    for inputs in EGO_INPUTS:
        fitted = EgoMLP.load(ego_mlp_path(bundle, inputs), inputs=inputs)
        config = bundle_mlp_config(bundle, inputs)
        held_out = cross_fitted_plans(exs, groups, inputs, config, folds)
        for i, token in enumerate(tokens):
            shifts[token][inputs] = fitted.plan(restrict_ego(exs[i].ego, inputs)) - held_out[i]
    return shifts
