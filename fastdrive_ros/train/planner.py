"""Stage B: the compact VLA planner (LLM + regression head) on cached visual tokens.

The planner sees the prompt (ego history, status and driving command in text) and ALL visual tokens
of the frozen tower (the paper's planner is not trained for pruning), and regresses the 6 future
waypoints with a smooth-L1 loss over the valid steps. `keep_min` < 1 turns on an optional,
documented augmentation: each sample keeps a random share in [keep_min, 1] of its visual tokens
(original positions kept); it is off by default.

An optional first phase (`text_config`) trains on the prompt alone (no visual token; the text keeps
its full-sequence positions): ~30x cheaper per step, it teaches a from-scratch LLM to read the ego
status (digits) before the expensive all-token phase teaches it to use the cameras.

Issue 8's training (each opt-in, so older runs reproduce): `subsets` (token_subsets.py) trains on
partial token sets of several selection styles; `ego_dropout` restricts that share of samples to
the minimal ego inputs (command + speed, core_types.restrict_ego), so one planner serves both
settings; `event_weight` repeats keyframes whose future the ego status cannot tell (the kinematic
prior of the full status misses the 3-s position by more than EVENT_MISS_M: something ahead made
the ego brake, stop, start or turn) that many times per epoch; `val_settings` validates on every
keyframe in each listed ego-input setting.

A planner with a SceneReader (nn/scene_reader.py) is trained to say what binds the ego too: with
the world's labels (data/world_labels.py), `fact_weight` x the reader's fact terms (kind CE,
inverse-gap MSE, decision smooth L1; train/affordance.fact_terms) join the trajectory loss, and an
optional `reader_config` phase first trains the reader alone on the cached tokens (cheap: no LLM),
so that the all-token phase starts from a reader that already reads the scene. From 48 training
scenes a reader learns the scenes, not what binds the ego (its held-out decision correlation is a
third of its training one); `reader_worlds` gives the reader-only phase more worlds' tokens and
labels, which cost a front-camera token cache each (a sixth of a full one) but no LLM step.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from fastdrive_ros.core_types import EGO_INPUTS, PLAN_STEPS, EgoState, restrict_ego
from fastdrive_ros.data.world_labels import SceneLabel
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.nn.planner import RegressionOutput, VLAPlanner
from fastdrive_ros.nn.scene_reader import SceneFacts, SceneReader
from fastdrive_ros.train.affordance import fact_outputs, fact_targets, fact_terms
from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.loop import TrainConfig, Trainer, TrainSummary
from fastdrive_ros.train.records import KeyframeRecord, previous_rows
from fastdrive_ros.train.token_cache import TokenCache
from fastdrive_ros.train.token_subsets import SubsetPolicy

PLANNER_PREFIX = "planner."
READER_PREFIX = "reader."
HORIZON_STEPS = {"1s": 2, "2s": 4, "3s": 6}
EVENT_MISS_M = 1.0  # a keyframe is an "event" when the full status' prior misses +3 s by this


def event_keyframes(records: Sequence[KeyframeRecord]) -> np.ndarray:
    """(R,) bool: keyframes where the ego status cannot tell the future.

    The kinematic prior of the full status misses the +3 s position by more than EVENT_MISS_M:
    the ego brakes, stops, starts or turns for something it has yet to show in its motion.
    """
    out = np.zeros(len(records), dtype=bool)
    for i, record in enumerate(records):
        if record.future_valid[-1]:
            miss = np.linalg.norm(kinematic_prior(record.ego)[-1] - record.future_xy[-1])
            out[i] = bool(miss > EVENT_MISS_M)
    return out


class PlannerTrainModule(nn.Module):
    """The planner behind one forward (for DDP): tokens + egos -> waypoints [B, 6, 2]."""

    def __init__(self, *, planner: VLAPlanner, grid_thw: torch.Tensor) -> None:
        super().__init__()
        if planner.waypoint_head is None:
            raise ValueError('planner training needs the regression head (head="regression")')
        self.planner = planner
        self.register_buffer("grid_thw", grid_thw.to(torch.int64).clone(), persistent=False)

    def forward(
        self,
        tokens: Sequence[torch.Tensor],
        kept_index: Sequence[torch.Tensor],
        egos: Sequence[EgoState],
        previous_tokens: Sequence[torch.Tensor | None] | None = None,
    ) -> RegressionOutput:
        """previous_tokens: each sample's keyframe before, at the same kept positions (or None)."""
        dtype = self.planner.model.embed_tokens.weight.dtype
        index = [i.cpu() for i in kept_index]
        return self.planner.forward_training(
            visual_tokens=[t.to(dtype) for t in tokens],
            kept_index=index,
            grid_thw=self.grid_thw.cpu(),
            egos=egos,
            previous_tokens=None
            if previous_tokens is None
            else [None if t is None else t.to(dtype) for t in previous_tokens],
            previous_index=index,
        )


class ReaderTrainModule(nn.Module):
    """The planner's SceneReader alone on the kept front tokens: tokens + egos -> SceneFacts."""

    def __init__(self, *, reader: SceneReader, front_length: int) -> None:
        super().__init__()
        self.reader = reader
        self.front_length = int(front_length)

    def forward(
        self,
        tokens: Sequence[torch.Tensor],
        kept_index: Sequence[torch.Tensor],
        egos: Sequence[EgoState],
    ) -> SceneFacts:
        front = [t[i.to(t.device) < self.front_length] for t, i in zip(tokens, kept_index)]
        return self.reader(front, [ego.speed for ego in egos])[1]


class PlannerDataset(Dataset):
    """Ego + ground-truth future of each record, with its cached tokens (same order as the cache).

    Without a cache the items are prompt-only (no visual token), for the text warm-up phase.
    `previous[i]`: the row of record i's keyframe 0.5 s before (i itself where it has none); an
    item then also holds that keyframe's tokens at the same kept positions, what a planner with
    a decision reader compares with (its frame memory in the node and the evaluation).
    """

    def __init__(
        self,
        *,
        cache: TokenCache | None,
        records: Sequence[KeyframeRecord],
        width: int,
        keep_min: float = 1.0,
        subsets: SubsetPolicy | None = None,
        ego_dropout: float = 0.0,
        event_weight: int = 1,
        settings: Sequence[str] = ("full",),
        labels: Mapping[str, SceneLabel] | None = None,
        cameras: int = 1,
        max_items: int | None = None,
        seed: int = 0,
        prior_shift: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        previous: Sequence[int] | None = None,
    ) -> None:
        if previous is not None and len(previous) != len(records):
            raise ValueError(f"{len(previous)} predecessor rows for {len(records)} records")
        if cache is not None and len(cache) != len(records):
            raise ValueError(
                f"token cache holds {len(cache)} samples, {len(records)} records were given: "
                "build the cache from these records"
            )
        if not 0.0 < keep_min <= 1.0:
            raise ValueError(f"keep_min must be in (0, 1], got {keep_min}")
        if not records:
            raise ValueError("no planner records")
        if not 0.0 <= ego_dropout <= 1.0 or event_weight < 1:
            raise ValueError(f"need ego_dropout in [0, 1], event_weight >= 1: {ego_dropout}")
        if not settings or any(s not in EGO_INPUTS for s in settings):
            raise ValueError(f"settings must be from {EGO_INPUTS}, got {settings}")
        self.cache = cache
        self.records = list(records)
        self.width = int(width)
        self.keep_min = float(keep_min)
        self.subsets = subsets
        self.ego_dropout = float(ego_dropout)
        self.settings = tuple(settings)
        self.labels = dict(labels or {})
        self.cameras = int(cameras)
        self.prior_shift = prior_shift
        self.previous = None if previous is None else [int(p) for p in previous]
        if prior_shift is not None:
            missing = [r.token for r in self.records if r.token not in prior_shift]
            if missing:
                raise ValueError(f"no prior shift for {len(missing)} keyframes, e.g. {missing[0]}")
        repeats = np.ones(len(self.records), dtype=np.int64)
        if event_weight > 1:
            repeats[event_keyframes(self.records)] = event_weight
        # item -> (record, ego-input setting): every record `repeats` times in every setting
        self.items = [
            (int(i), setting)
            for i in np.repeat(np.arange(len(self.records)), repeats)
            for setting in self.settings
        ]
        if max_items is not None and max_items < len(self.items):
            # a short run: a seeded random subset of the epoch (event repeats included)
            pick = np.random.default_rng(seed).permutation(len(self.items))[:max_items]
            self.items = [self.items[i] for i in sorted(pick.tolist())]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> dict[str, Any]:
        index, setting = self.items[item]
        record = self.records[index]
        if self.cache is None:
            tokens = torch.zeros(0, self.width, dtype=torch.float16)
            kept = torch.zeros(0, dtype=torch.long)
        else:
            tokens = self.cache.tokens(index)
            kept = torch.arange(tokens.shape[0])
        count = tokens.shape[0]
        if self.subsets is not None and count:
            fg = self.cache.fg_fraction(index) if self.cache is not None else None
            kept = self.subsets.select(tokens, fg, self.cameras)
            tokens = tokens[kept]
        elif self.keep_min < 1.0 and count:
            share = self.keep_min + (1.0 - self.keep_min) * float(torch.rand(()))
            keep = max(1, int(round(count * share)))
            kept = torch.sort(torch.randperm(count)[:keep]).values
            tokens = tokens[kept]
        future = np.nan_to_num(record.future_xy, nan=0.0)
        ego = record.ego
        if setting == "minimal" or (
            self.ego_dropout > 0 and float(torch.rand(())) < self.ego_dropout
        ):
            ego = restrict_ego(ego, "minimal")
        if self.prior_shift is not None:  # the target over the cross-fitted prior (ego_mlp.py)
            future = future + self.prior_shift[record.token][ego.inputs]
        before = None if self.previous is None else self.previous[index]
        previous = None
        if self.cache is not None and before is not None and before != index:
            previous = self.cache.tokens(before)[kept]  # the same positions kept 0.5 s before
        return {
            "tokens": tokens,
            "kept_index": kept,
            "previous_tokens": previous,
            "ego": ego,
            "future": torch.as_tensor(future, dtype=torch.float32),
            "valid": torch.as_tensor(record.future_valid, dtype=torch.bool),
            **fact_targets(self.labels.get(record.token)),
        }


FACT_KEYS = ("lead", "inverse_gap", "decision")


def collate_planner(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tokens": [item["tokens"] for item in items],
        "kept_index": [item["kept_index"] for item in items],
        "previous_tokens": [item.get("previous_tokens") for item in items],
        "egos": [item["ego"] for item in items],
        "future": torch.stack([item["future"] for item in items]),
        "valid": torch.stack([item["valid"] for item in items]),
        **{key: torch.stack([item[key] for item in items]) for key in FACT_KEYS},
    }


def horizon_l2(pred: torch.Tensor, future: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    """L2 (m) at 1/2/3 s (cumulative means over valid steps) and their mean, as the evaluation."""
    dist = torch.linalg.vector_norm(pred.float() - future.float(), dim=-1)  # [B, 6]
    out: dict[str, float] = {}
    for name, steps in HORIZON_STEPS.items():
        mask = valid[:, :steps].float()
        out[f"l2_{name}"] = float((dist[:, :steps] * mask).sum() / mask.sum().clamp(min=1.0))
    out["l2_avg"] = float(np.mean([out[f"l2_{h}"] for h in HORIZON_STEPS]))
    return out


def constant_velocity_batch(egos: Sequence[EgoState], device: torch.device) -> torch.Tensor:
    """[B, 6, 2] constant-velocity (CTRV) plans, the evaluation's reference row."""
    from fastdrive_ros.eval.constant_velocity import constant_velocity_plan

    plans = np.stack([constant_velocity_plan(ego) for ego in egos])
    return torch.as_tensor(plans, dtype=torch.float32, device=device)


def planner_loss(
    model: nn.Module, batch: dict[str, Any], *, beta: float = 1.0, fact_weight: float = 0.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Smooth-L1 (beta metres) over x and y of the valid steps; L2 metrics, and CV's in eval.

    With a SceneReader and fact_weight > 0, plus fact_weight x its fact terms where labelled
    (in training only: validation's loss, which picks the best weights, is the trajectory's).
    """
    out = model(batch["tokens"], batch["kept_index"], batch["egos"], batch.get("previous_tokens"))
    pred = out.waypoints
    future, valid = batch["future"], batch["valid"]
    if pred.shape[1:] != (PLAN_STEPS, 2):
        raise ValueError(f"planner output must be [B, {PLAN_STEPS}, 2], got {tuple(pred.shape)}")
    per_step = F.smooth_l1_loss(pred.float(), future, beta=beta, reduction="none").sum(-1)
    mask = valid.float()
    loss = (per_step * mask).sum() / mask.sum().clamp(min=1.0)
    with torch.no_grad():
        metrics = horizon_l2(pred.detach(), future, valid)
    if out.facts is not None and fact_weight > 0:
        facts, fact_metrics = fact_terms(fact_outputs(out.facts), batch)
        if model.training:
            loss = loss + fact_weight * facts
        metrics.update({f"fact_{k}": v for k, v in fact_metrics.items()})
    with torch.no_grad():
        if not model.training:
            cv = constant_velocity_batch(batch["egos"], pred.device)
            metrics.update({f"cv_{k}": v for k, v in horizon_l2(cv, future, valid).items()})
    return loss, metrics


def train_planner(
    *,
    planner: VLAPlanner,
    train_cache: TokenCache,
    train_records: Sequence[KeyframeRecord],
    val_cache: TokenCache | None,
    val_records: Sequence[KeyframeRecord],
    out_dir: str | Path,
    config: TrainConfig,
    text_config: TrainConfig | None = None,
    text_records: Sequence[KeyframeRecord] | None = None,
    keep_min: float = 1.0,
    subsets: SubsetPolicy | None = None,
    ego_dropout: float = 0.0,
    event_weight: int = 1,
    val_settings: Sequence[str] = ("full",),
    max_items: int | None = None,
    beta: float = 1.0,
    labels: Mapping[str, SceneLabel] | None = None,
    fact_weight: float = 0.0,
    reader_config: TrainConfig | None = None,
    reader_worlds: Sequence[tuple[TokenCache, Sequence[KeyframeRecord]]] = (),
    prior_shift: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    chain: Mapping[str, str] | None = None,
    dist: DistContext | None = None,
    progress: bool = True,
) -> dict[str, TrainSummary]:
    """Train `planner` in place on cached tokens; ends with the best-validation weights.

    With `text_config`, a prompt-only phase runs first (out_dir/text, on `text_records`, default
    the training records: it needs no cache); with `reader_config` (a planner with a SceneReader
    and `labels` of its keyframes, train and val), a reader-only phase (out_dir/reader); then the
    all-token phase (out_dir/full) starts from their best weights. Returns {"text"?, "reader"?,
    "full"} summaries. `reader_worlds`: more (front-camera cache, records) the reader-only phase
    trains on, their keyframes labelled in `labels` too. `prior_shift` (token -> setting ->
    [6, 2], train/ego_mlp.cross_fitted_prior_shift) moves the training targets of a planner over
    the ego-MLP prior to the residual over a cross-fitted prior; validation keeps the true ones.
    `chain` (keyframe token -> the token of the keyframe before it, records.sample_chain):
    a planner with a decision reader then compares each keyframe with the one before, as it
    will with its frame memory.
    """
    if reader_config is not None and (planner.scene_reader is None or not labels):
        raise ValueError("the reader phase needs a planner with a SceneReader and scene labels")
    if reader_worlds and reader_config is None:
        raise ValueError("more worlds for the reader need a reader-only phase (reader_config)")
    for cache, records in reader_worlds:  # the reader reads the front camera: nothing else
        if cache.spec.width != train_cache.spec.width or not torch.equal(
            cache.grid_thw, train_cache.grid_thw[:1]
        ):
            raise ValueError(
                "a reader world's token cache must hold the front camera alone, from the same "
                "tower and image size as the training world's (records of its first camera)"
            )
        unlabelled = [r.token for r in records if r.token not in (labels or {})]
        if unlabelled:
            raise ValueError(
                f"{len(unlabelled)} keyframes of a reader world have no scene label (e.g. "
                f"{unlabelled[0]}): give its labels with the training world's"
            )
    summaries: dict[str, TrainSummary] = {}
    width, grid = train_cache.spec.width, train_cache.grid_thw
    cameras = int(grid.shape[0])
    shared = {"ego_dropout": ego_dropout, "event_weight": event_weight, "prior_shift": prior_shift}
    phases: list[tuple[str, TrainConfig, Dataset, PlannerDataset | None]] = []
    if text_config is not None:
        text_set = PlannerDataset(
            cache=None, records=text_records or train_records, width=width, **shared
        )
        text_val = PlannerDataset(
            cache=None, records=val_records, width=width, settings=val_settings
        )
        phases.append(("text", text_config, text_set, text_val if val_records else None))
    if planner.decision_reader is not None and chain is None:
        raise ValueError("a planner with a decision reader trains on keyframe pairs: pass chain")

    def rows(records: Sequence[KeyframeRecord]) -> list[int] | None:
        return None if chain is None else previous_rows(records, chain).tolist()

    token_set = functools.partial(
        PlannerDataset,
        cache=train_cache,
        records=train_records,
        previous=rows(train_records),
        width=width,
        keep_min=keep_min,
        subsets=subsets,
        cameras=cameras,
        seed=config.seed,
        labels=labels,
        **shared,
    )
    full_set = token_set(max_items=max_items)
    full_val = None
    if val_cache is not None and val_records:
        full_val = PlannerDataset(
            cache=val_cache,
            records=val_records,
            width=width,
            settings=val_settings,
            labels=labels,
            previous=rows(val_records),
        )
    if reader_config is not None:  # cheap without the LLM: every keyframe, not max_items
        worlds = [token_set()]
        # the reader phase reads labels, not targets: other worlds need no prior shift
        worlds += [
            token_set(cache=c, records=r, cameras=1, prior_shift=None, previous=None)
            for c, r in reader_worlds
        ]
        reader_set = worlds[0] if len(worlds) == 1 else ConcatDataset(worlds)
        phases.append(("reader", reader_config, reader_set, full_val))
    phases.append(("full", config, full_set, full_val))
    for name, phase_config, train_set, val_set in phases:
        summaries[name] = _train_phase(
            planner=planner,
            train_set=train_set,
            val_set=val_set,
            grid_thw=grid,
            out_dir=Path(out_dir) / name,
            config=phase_config,
            beta=beta,
            fact_weight=fact_weight,
            reader_only=name == "reader",
            dist=dist,
            progress=progress,
            description=f"planner {name} (stage B)",
        )
    return summaries


def reader_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """The reader-only phase: the SceneReader's fact terms on the labelled keyframes."""
    facts = model(batch["tokens"], batch["kept_index"], batch["egos"])
    return fact_terms(fact_outputs(facts), batch)


def _train_phase(
    *,
    planner: VLAPlanner,
    train_set: Dataset,
    val_set: PlannerDataset | None,
    grid_thw: torch.Tensor,
    out_dir: Path,
    config: TrainConfig,
    beta: float,
    fact_weight: float,
    reader_only: bool,
    dist: DistContext | None,
    progress: bool,
    description: str,
) -> TrainSummary:
    from fastdrive_ros.train.checkpoint import load_best

    if reader_only:  # the SceneReader alone: its facts, no LLM
        target, prefix, loss_fn = planner.scene_reader, READER_PREFIX, reader_loss
        module: nn.Module = ReaderTrainModule(
            reader=planner.scene_reader, front_length=planner.first_camera_length(grid_thw)
        )
    else:
        target, prefix = planner, PLANNER_PREFIX
        module = PlannerTrainModule(planner=planner, grid_thw=grid_thw)

        def loss_fn(m, b):
            return planner_loss(m, b, beta=beta, fact_weight=fact_weight)

    trainer = Trainer(
        model=module.train(),
        loss_fn=loss_fn,
        train_set=train_set,
        val_set=val_set,
        config=config,
        out_dir=out_dir,
        collate_fn=collate_planner,
        dist=dist,
        progress=progress,
        description=description,
    )
    summary = trainer.fit()
    load_best(target, out_dir, prefix)
    return summary
