"""One training loop for every model here: seeded, resumable, data-parallel, with progress.

The pruner and the planner differ only in their model, data and loss; this loop owns what they
share: AdamW with a warm-up + cosine schedule, gradient clipping, periodic validation, `last/` and
`best/` checkpoints (resumed exactly, including the position inside an epoch), a metrics log
(`metrics.jsonl`) and a tqdm bar on the main rank.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from fastdrive_ros.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from fastdrive_ros.train.distributed import DistContext, unwrap

LossFn = Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the paper trains ReconPruner with lr 2e-5, cosine, 10 epochs).

    Attributes:
        batch_size: per process; the global batch is batch_size x world size.
        val_every: validate every this many optimiser steps (and at the end of every epoch).
        ckpt_every: write `last/` every this many steps (and at the end of every epoch).
        min_lr_ratio: the cosine schedule decays to lr x min_lr_ratio.
    """

    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    val_every: int = 0
    ckpt_every: int = 200
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError("lr must be > 0, weight_decay and warmup_steps >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("min_lr_ratio must be in [0, 1]")


@dataclass
class TrainSummary:
    """What a finished (or resumed-and-finished) run did."""

    steps: int
    epochs: int
    seconds: float
    last_train_loss: float
    best_val: float
    val_history: list[dict[str, float]] = field(default_factory=list)
    out_dir: str = ""


def seed_everything(seed: int) -> None:
    """Python, numpy and torch RNGs from one seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_with_warmup(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable:
    """LambdaLR factor: linear warm-up, then cosine decay to min_ratio."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts/lists/tuples to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


class Trainer:
    """Trains `model` by minimising `loss_fn(model, batch) -> (loss, metrics)`."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        loss_fn: LossFn,
        train_set: Dataset,
        val_set: Dataset | None,
        config: TrainConfig,
        out_dir: str | Path,
        collate_fn: Callable | None = None,
        dist: DistContext | None = None,
        progress: bool = True,
        description: str = "train",
    ) -> None:
        if len(train_set) == 0:  # type: ignore[arg-type]
            raise ValueError("the training set is empty: nothing to train on")
        self.config = config
        self.dist = dist or DistContext()
        self.out_dir = Path(out_dir)
        self.loss_fn = loss_fn
        self.collate_fn = collate_fn
        self.train_set = train_set
        self.val_set = val_set
        self.progress = progress and self.dist.is_main
        self.description = description
        seed_everything(config.seed + self.dist.rank)
        self.model = self.dist.wrap(model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = len(self._loader(epoch=0))
        self.total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            cosine_with_warmup(self.total_steps, config.warmup_steps, config.min_lr_ratio),
        )
        self.state = TrainState(metadata={"config": asdict(config)})

    def _loader(self, *, epoch: int, dataset: Dataset | None = None, shuffle: bool = True):
        dataset = self.train_set if dataset is None else dataset
        if self.dist.enabled:
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=self.config.seed)
            sampler.set_epoch(epoch)
            return DataLoader(
                dataset,
                batch_size=self.config.batch_size,
                sampler=sampler,
                collate_fn=self.collate_fn,
                num_workers=self.config.num_workers,
            )
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
            collate_fn=self.collate_fn,
            num_workers=self.config.num_workers,
        )

    def _batches(self, epoch: int, skip: int) -> Iterator[Any]:
        for i, batch in enumerate(self._loader(epoch=epoch)):
            if i >= skip:
                yield batch

    def resume(self) -> bool:
        """Continue from `out_dir/last` if it exists; True if something was restored."""
        last = self.out_dir / "last"
        if not last.is_dir():
            return False
        self.state = load_checkpoint(
            last, model=unwrap(self.model), optimizer=self.optimizer, scheduler=self.scheduler
        )
        return True

    def validate(self) -> dict[str, float]:
        """Mean loss and metrics over the validation set (all ranks)."""
        if self.val_set is None or len(self.val_set) == 0:  # type: ignore[arg-type]
            return {}
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        with torch.no_grad():
            for batch in self._loader(epoch=0, dataset=self.val_set, shuffle=False):
                loss, metrics = self.loss_fn(self.model, move_to(batch, self.dist.device))
                for key, value in {"loss": float(loss), **metrics}.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
        self.model.train()
        return {f"val_{k}": self.dist.mean(v / max(count, 1)) for k, v in sums.items()}

    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with (self.out_dir / "metrics.jsonl").open("a") as log:
                log.write(json.dumps(record) + "\n")

    def _checkpoint(self, name: str) -> None:
        if self.dist.is_main:
            save_checkpoint(
                self.out_dir / name,
                model=unwrap(self.model),
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                state=self.state,
            )
        self.dist.barrier()

    def _validate_and_keep_best(self, history: list[dict[str, float]]) -> None:
        metrics = self.validate()
        if not metrics:
            return
        record = {"step": self.state.step, "epoch": self.state.epoch, **metrics}
        history.append(record)
        self._log({"kind": "val", **record})
        if metrics["val_loss"] < self.state.best_val:
            self.state.best_val = metrics["val_loss"]
            self._checkpoint("best")

    def fit(self, *, resume: bool = True) -> TrainSummary:
        """Train to the configured number of epochs (continuing a previous run if asked)."""
        if resume:
            self.resume()
        start = time.monotonic()
        history: list[dict[str, float]] = []
        last_loss = float("nan")
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            desc=self.description,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        while self.state.epoch < self.config.epochs:
            skip = self.state.step - self.state.epoch * self.steps_per_epoch
            for batch in self._batches(self.state.epoch, skip):
                last_loss, metrics = self._train_step(batch)
                self.state.step += 1
                bar.update(1)
                bar.set_postfix(
                    loss=f"{last_loss:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}"
                )
                self._log({"kind": "train", "step": self.state.step, "loss": last_loss, **metrics})
                if self.config.val_every and self.state.step % self.config.val_every == 0:
                    self._validate_and_keep_best(history)
                if self.config.ckpt_every and self.state.step % self.config.ckpt_every == 0:
                    self._checkpoint("last")
            self.state.epoch += 1
            self._validate_and_keep_best(history)
            self._checkpoint("last")
        bar.close()
        return TrainSummary(
            steps=self.state.step,
            epochs=self.state.epoch,
            seconds=time.monotonic() - start,
            last_train_loss=last_loss,
            best_val=self.state.best_val,
            val_history=history,
            out_dir=str(self.out_dir),
        )

    def _train_step(self, batch: Any) -> tuple[float, dict[str, float]]:
        loss, metrics = self.loss_fn(self.model, move_to(batch, self.dist.device))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {float(loss.detach())} at step {self.state.step}: "
                "lower --lr or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            params: Iterable[torch.Tensor] = (
                p for p in self.model.parameters() if p.requires_grad
            )
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), {k: float(v) for k, v in metrics.items()}
