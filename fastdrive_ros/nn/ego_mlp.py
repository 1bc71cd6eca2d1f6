"""The ego-only reference planner (AD-MLP style): a small MLP on the ego status, no camera.

On nuScenes an MLP fed only ego status matches published planners on L2 (FACTS.md), so a camera
planner must at least beat this one, trained on the same keyframes with the same ego inputs, before
its images can be said to help. It predicts a residual over the kinematic prior of the setting:

- inputs "full": speed, acceleration, yaw rate, steering, the 6 past poses (x, y) and the command
  (one-hot); prior = CTRA from the ego status (nn/ctra.py).
- inputs "minimal": speed and the command; prior = CTRA of the restricted ego, which is constant
  velocity in a straight line (acceleration and yaw rate are 0 there by construction).

Features are standardised with the training set's mean and std (kept as buffers, so the
safetensors file is all that is needed to predict). One file per setting, inside the model bundle:
<bundle>/ego_mlp/<inputs>.safetensors, with its setting and training figures in the metadata.
Training: train/ego_mlp.py. EgoPrior: both settings' MLPs as the prior a planner's waypoint head
predicts its residual over (VLAConfig.waypoint_prior = "ego_mlp").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastdrive_ros.core_types import EGO_INPUTS, PLAN_STEPS, EgoInputs, EgoState, restrict_ego
from fastdrive_ros.nn.ctra import ctra_plan
from fastdrive_ros.nn.forward_only import forward_only
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
        """(6, 2) waypoints for one ego state: prior + predicted residual, never backwards.

        Projected like the VLA's plans (nn/forward_only.py), so the reference is held to the
        same physics as the planner it is compared with.
        """
        features = torch.as_tensor(ego_features(ego, self.inputs), dtype=torch.float32)
        # on the weights' device: inside a planner moved to CUDA the prior is there too
        residual = self(features[None].to(self.feature_mean.device))[0].double().cpu().numpy()
        return forward_only(kinematic_prior(ego, self.inputs) + residual)

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


PRIOR_HIDDEN = 128  # the ego MLPs' default width, the only one a planner's prior holds


class EgoPrior(nn.Module):
    """Both settings' ego MLPs, frozen: each sample's plan from the MLP of its own ego inputs.

    As a planner's waypoint prior it starts the planner AS the ego-only reference (its head is
    zero-initialised), so whatever the planner adds to it is what the cameras and the reader
    tell beyond the ego status, and the reference is no longer something it has to relearn.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mlps = nn.ModuleDict({inputs: EgoMLP(inputs, PRIOR_HIDDEN) for inputs in EGO_INPUTS})
        self.requires_grad_(False)

    @classmethod
    def from_bundle(cls, bundle: str | Path) -> EgoPrior:
        """The prior of a bundle's trained ego MLPs (`fastdrive train-ego-mlp`)."""
        loaded = {
            inputs: EgoMLP.load(ego_mlp_path(bundle, inputs), inputs=inputs)
            for inputs in EGO_INPUTS
        }
        hidden = {mlp.hidden for mlp in loaded.values()}
        if hidden != {PRIOR_HIDDEN}:  # a planner's config does not record another width
            raise ValueError(
                f"{bundle}: a planner's ego-MLP prior needs ego MLPs {PRIOR_HIDDEN} wide, these "
                f"are {sorted(hidden)}: retrain them with `fastdrive train-ego-mlp --hidden "
                f"{PRIOR_HIDDEN}`"
            )
        prior = cls()
        for inputs, mlp in loaded.items():
            prior.mlps[inputs].load_state_dict(mlp.state_dict())
        return prior.eval()

    def forward(self, egos: Sequence[EgoState]) -> torch.Tensor:
        """[B, 6, 2] float32 plans on the prior's device."""
        device = self.mlps[EGO_INPUTS[0]].feature_mean.device
        plans = np.stack([self.mlps[ego.inputs].plan(ego) for ego in egos])
        return torch.as_tensor(plans, dtype=torch.float32, device=device)
