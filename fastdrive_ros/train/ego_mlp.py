"""The ego-only reference planner (AD-MLP style): a small MLP on the ego status, no camera.

On nuScenes an MLP fed only ego status matches published planners on L2 (FACTS.md), so a camera
planner must at least beat this one, trained on the same keyframes with the same ego inputs, before
its images can be said to help. It predicts a residual over the kinematic prior of the setting:

- inputs "full": speed, acceleration, yaw rate, steering, the 6 past poses (x, y) and the command
  (one-hot); prior = CTRA from the ego status (eval/ctra.py).
- inputs "minimal": speed and the command; prior = CTRA of the restricted ego, which is constant
  velocity in a straight line (acceleration and yaw rate are 0 there by construction).

Features are standardised with the training set's mean and std (kept as buffers, so the
safetensors file is all that is needed to predict). One file per setting, inside the model bundle:
<bundle>/ego_mlp/<inputs>.safetensors, with its setting and training figures in the metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastdrive_ros.core_types import EGO_INPUTS, PLAN_STEPS, EgoInputs, EgoState, restrict_ego
from fastdrive_ros.eval.ctra import ctra_plan
from fastdrive_ros.nn.integrity import verify_file, write_manifest

FORMAT = "fastdrive_ros.ego_mlp"
FORMAT_VERSION = "1"
FOLDER = "ego_mlp"
COMMANDS: tuple[str, ...] = ("left", "right", "straight")
OUT_SCALE = 5.0  # metres: residuals are learnt in units of 5 m so the output layer starts small


def ego_mlp_path(bundle: str | Path, inputs: EgoInputs) -> Path:
    """Where the bundle keeps the ego MLP of one input setting."""
    if inputs not in EGO_INPUTS:
        raise ValueError(f"inputs must be one of {EGO_INPUTS}, got {inputs!r}")
    return Path(bundle) / FOLDER / f"{inputs}.safetensors"


def feature_count(inputs: EgoInputs) -> int:
    return 4 + 12 + len(COMMANDS) if inputs == "full" else 1 + len(COMMANDS)


def ego_features(ego: EgoState, inputs: EgoInputs) -> np.ndarray:
    """(feature_count(inputs),) raw features of `ego` as the setting may read it."""
    seen = restrict_ego(ego, inputs)
    command = np.array([seen.command == c for c in COMMANDS], dtype=np.float64)
    if inputs == "minimal":
        return np.concatenate([[seen.speed], command])
    status = [seen.speed, seen.acceleration, seen.yaw_rate, seen.steering]
    history = np.asarray(seen.history_xy, dtype=np.float64)[:-1].reshape(-1)  # last row is 0
    return np.concatenate([status, history, command])


def kinematic_prior(ego: EgoState, inputs: EgoInputs) -> np.ndarray:
    """(6, 2) prior the MLP adds its residual to: CTRA of the ego as the setting sees it."""
    return ctra_plan(restrict_ego(ego, inputs))


class EgoMLP(nn.Module):
    """Features -> standardise -> 2 hidden ReLU layers -> 6 x (dx, dy) residual over the prior."""

    def __init__(self, inputs: EgoInputs, hidden: int = 128) -> None:
        super().__init__()
        if inputs not in EGO_INPUTS:
            raise ValueError(f"inputs must be one of {EGO_INPUTS}, got {inputs!r}")
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.inputs: EgoInputs = inputs
        self.hidden = hidden
        n = feature_count(inputs)
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_std", torch.ones(n))
        self.net = nn.Sequential(
            nn.Linear(n, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, PLAN_STEPS * 2),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, F] raw features -> [B, 6, 2] residual in metres."""
        z = (features - self.feature_mean) / self.feature_std
        return OUT_SCALE * self.net(z).view(-1, PLAN_STEPS, 2)

    @torch.no_grad()
    def plan(self, ego: EgoState) -> np.ndarray:
        """(6, 2) waypoints for one ego state: prior + predicted residual."""
        features = torch.as_tensor(ego_features(ego, self.inputs), dtype=torch.float32)[None]
        residual = self(features)[0].double().numpy()
        return kinematic_prior(ego, self.inputs) + residual

    def save(self, path: str | Path, **meta: object) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "inputs": self.inputs,
            "hidden": str(self.hidden),
            "meta": json.dumps(meta),
        }
        save_file(tensors, str(path), metadata=header)
        # the folder's SHA256SUMS (nn/integrity.py) lists every ego MLP in it, as for the bundle
        names = sorted(f.name for f in path.parent.glob("*.safetensors"))
        write_manifest(path.parent, names)
        return path

    @classmethod
    def load(cls, path: str | Path, *, inputs: EgoInputs | None = None) -> EgoMLP:
        """Load a saved ego MLP; `inputs` (if given) must match the setting it was trained for."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no ego MLP at {path}: train one with `fastdrive train-ego-mlp`"
            )
        verify_file(path, remedy="retrain it with `fastdrive train-ego-mlp`")
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} file")
        saved = header.get("inputs")
        if inputs is not None and saved != inputs:
            raise ValueError(f"{path} was trained for ego inputs {saved!r}, not {inputs!r}")
        model = cls(saved, hidden=int(header["hidden"]))  # type: ignore[arg-type]
        model.load_state_dict(tensors)
        model.eval()
        return model

    @staticmethod
    def metadata(path: str | Path) -> dict:
        """The training figures saved with the model (`meta` of `save`)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return json.loads((handle.metadata() or {}).get("meta", "{}"))


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
