"""Resumable training checkpoints with no pickle: tensors in safetensors, the rest in JSON.

A checkpoint folder holds `model.safetensors` (weights), `optimizer.safetensors` (the optimizer's
per-parameter tensors, flattened), `rng.safetensors` (torch RNG states) and `state.json` (step,
epoch, scheduler, optimizer hyper-parameters, numpy and Python RNG states, caller metadata).
Checkpoints are written to a temporary folder and renamed, so a crash never leaves a half-written
`last/`.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or does not fit the model being trained."""


@dataclass
class TrainState:
    """Progress counters saved with every checkpoint."""

    step: int = 0
    epoch: int = 0
    best_val: float = float("inf")
    metadata: dict[str, Any] = field(default_factory=dict)


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()}
        for group in state_dict["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, entries in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(entries)
    groups = [
        {k: (tuple(v) if k == "betas" else v) for k, v in group.items()}
        for group in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    folder: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    state: TrainState,
) -> Path:
    """Write a complete checkpoint to `folder` atomically (tmp folder, then rename)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # save_model stores tied weights (an LLM's lm_head = embeddings) once; save_file refuses them
    save_model(model, str(tmp / MODEL_FILE))
    payload: dict[str, Any] = {
        "step": state.step,
        "epoch": state.epoch,
        "best_val": state.best_val if np.isfinite(state.best_val) else None,
        "metadata": state.metadata,
        "python_rng": _jsonable(random.getstate()),
        "numpy_rng": _jsonable(np.random.get_state()),
    }
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        payload["optimizer"] = meta
    if scheduler is not None:
        payload["scheduler"] = scheduler.state_dict()
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / RNG_FILE))
    (tmp / STATE_FILE).write_text(json.dumps(payload, indent=1, default=_json_default))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def load_checkpoint(
    folder: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    restore_rng: bool = True,
) -> TrainState:
    """Restore what `save_checkpoint` wrote; the model must have exactly the saved parameters."""
    folder = Path(folder)
    for name in (STATE_FILE, MODEL_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(
                f"{folder / name} is missing: not a complete checkpoint (delete the folder to "
                "start fresh, or pass the right --out)"
            )
    try:
        payload = json.loads((folder / STATE_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / STATE_FILE} is not valid JSON: {exc}") from exc
    missing, unexpected = load_model(model, str(folder / MODEL_FILE), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{folder / MODEL_FILE} does not fit this model (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}): it was made with another configuration"
        )
    if optimizer is not None and "optimizer" in payload:
        tensors = load_file(str(folder / OPTIMIZER_FILE))
        optimizer.load_state_dict(_unflatten_optimizer(tensors, payload["optimizer"]))
    if scheduler is not None and "scheduler" in payload:
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        random.setstate(_tuplify(payload["python_rng"]))
        kind, keys, pos, has_gauss, cached = payload["numpy_rng"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        rng = load_file(str(folder / RNG_FILE))
        torch.set_rng_state(rng["torch"])
        cuda_states = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    best = payload.get("best_val")
    return TrainState(
        step=int(payload["step"]),
        epoch=int(payload["epoch"]),
        best_val=float("inf") if best is None else float(best),
        metadata=payload.get("metadata", {}),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's state.json")


def load_prefixed(module: torch.nn.Module, checkpoint: str | Path, prefix: str) -> None:
    """Load the `prefix`-ed weights of a Trainer checkpoint folder into `module` (strict)."""
    path = Path(checkpoint) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: not a finished training checkpoint")
    state = {k[len(prefix) :]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{path} holds no weights under {prefix!r}")
    missing, unexpected = module.load_state_dict(state, strict=False)
    # A tied weight (lm_head = embeddings) is stored once, under one of its names.
    current = module.state_dict()
    loaded = {current[k].data_ptr() for k in state if k in current}
    untied = [k for k in missing if current[k].data_ptr() not in loaded]
    if untied or unexpected:
        raise ValueError(
            f"{path} does not fit {type(module).__name__}: missing {untied[:4]}, "
            f"unexpected {list(unexpected)[:4]}"
        )


def load_best(module: torch.nn.Module, out_dir: str | Path, prefix: str) -> None:
    """After Trainer.fit(): load the best checkpoint (the last without validation), eval mode."""
    best = Path(out_dir) / "best"
    load_prefixed(module, best if best.is_dir() else Path(out_dir) / "last", prefix)
    module.eval()
