"""Stage A2: teach the tower what the driver reacts to, from the front camera (compact default).

Stage A's per-token targets (class, colour, depth) say what is in each cell, not what of it binds
the ego. On the training world a ridge on the minimal ego inputs (speed, command) reaches 0.94 /
0.69 m L2 Avg on the two held-out worlds; adding the world's labels of the binding constraint
(kind, gap: what one frame shows) 0.77 / 0.59, its closing speed 0.67 / 0.47, the driver's decided
acceleration 0.56 / 0.42 (the full ego status: 0.63 / 0.45). That is what the cameras are there to
show (issue 8; `python -m fastdrive_ros.train.scene_probe` measures it).

So stage A2 fine-tunes the stage-A tower on whole front-camera images with frame-level heads on
one learned-query pooling of the camera's tokens: the constraint's kind (LEAD_KINDS,
cross-entropy), its inverse gap (min(1, NEAR_M / gap), 0 where none; MSE) and, given the ego's
speed, the acceleration the driver decided (smooth L1, where the world recorded it). The heads are
deliberately weak (one pooling, one hidden layer) so the tower, not the head, has to put the
answer into its tokens, where the planner's attention can read it. Stage A's per-token losses
stay on (same images) so the tokens keep saying what is where. Training-only heads: only the
tower's weights are kept.

Opt-in (`build-default --affordance`). train/decision_probe.py finds a content effect in the A2
tower's front tokens on both held-out worlds (+9.2 / +16.1 % after 6 epochs) where the stage-A
tower has none, but the decision is read poorly from one frame (held-out correlation 0.16 / 0.18).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fastdrive_ros.data.world_labels import LEAD_KINDS, SceneLabel
from fastdrive_ros.nn.scene_reader import MotionHead, SceneFacts, SceneHead
from fastdrive_ros.nn.vision import VisionEncoder
from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.images import load_pixels
from fastdrive_ros.train.loop import TrainConfig, TrainSummary
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.vision import (
    CameraImageDataset,
    VisionAuxModel,
    fit_tower,
    vision_terms,
)

NEAR_M = 5.0  # a constraint this close or closer reads 1.0; 10 m reads 0.5, 50 m 0.1
FRONT_CAMERA = "CAM_FRONT"


def inverse_gap(gap_m: float) -> float:
    """min(1, NEAR_M / gap): bounded, and most resolved where braking is decided."""
    if not gap_m > 0:
        return 1.0
    return 0.0 if math.isinf(gap_m) else min(1.0, NEAR_M / gap_m)


class VisionAffordanceModel(VisionAuxModel):
    """Stage A's model plus the frame-level SceneHead (the planner reader's facts).

    With `motion`, also a MotionHead on the frame and the keyframe before it (the tower runs on
    both): the closing speed and the decision, which one frame cannot show.
    """

    def __init__(self, *, encoder: VisionEncoder, motion: bool = False) -> None:
        super().__init__(encoder=encoder)
        self.affordance_head = SceneHead(encoder.out_dim)
        self.motion_head = MotionHead(encoder.out_dim) if motion else None

    def forward(
        self, pixels: torch.Tensor, speed: torch.Tensor, previous: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        if self.motion_head is None or previous is None:
            tokens = self.twin(pixels)
            facts, _ = self.affordance_head(tokens, speed)
            return {**self.token_heads(tokens), **fact_outputs(facts)}
        tokens, before = self.twin(torch.cat([pixels, previous])).split(len(pixels))
        facts, _ = self.affordance_head(tokens, speed)
        moved = self.motion_head(tokens, before, speed)
        return {
            **self.token_heads(tokens),
            **fact_outputs(facts),
            "closing_speed": moved.closing_speed,
            "motion_decision": moved.decision,
        }


class FrontFrameDataset(CameraImageDataset):
    """Whole front-camera images of the keyframes the world labelled, stage A's targets too."""

    def __init__(
        self,
        *,
        records: Sequence[KeyframeRecord],
        labels: Mapping[str, SceneLabel],
        image_size: tuple[int, int],
        unit: int,
        limit: int | None = None,
        chain: Mapping[str, str] | None = None,
    ) -> None:
        """Front images of the labelled keyframes (spread-subsampled to `limit`).

        chain: {sample token: the keyframe before it}; given, every item also has the previous
        keyframe's front image (its own for a scene's first) and the closing speed.
        """
        super().__init__(records=records, image_size=image_size, unit=unit)
        front = {
            i: r.cameras.index(FRONT_CAMERA)
            for i, r in enumerate(self.records)
            if FRONT_CAMERA in r.cameras and r.token in labels
        }
        self.items = [(i, c) for i, c in self.items if front.get(i) == c]
        if not self.items:
            raise ValueError(
                f"no {FRONT_CAMERA} image with a class map belongs to a keyframe the world "
                "labelled (synth/scenes/<scene>.json): stage A2 needs the synthetic world"
            )
        if limit is not None and limit < len(self.items):
            step = len(self.items) / limit
            self.items = [self.items[int(k * step)] for k in range(limit)]
        self.labels = labels
        self.chain = chain
        self.row = {r.token: i for i, r in enumerate(self.records)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(index)
        i = self.items[index][0]
        record = self.records[i]
        label = self.labels[record.token]
        item.update(fact_targets(label))
        item["speed"] = torch.tensor(record.ego.speed, dtype=torch.float32)
        if self.chain is not None:
            before = self.records[self.row.get(self.chain.get(record.token, ""), i)]
            front = before.images[before.cameras.index(FRONT_CAMERA)]
            item["previous"] = load_pixels([front], self.image_size)[0]
            item["closing_speed"] = torch.tensor(closing_speed(label, record.ego.speed))
        return item


def closing_speed(label: SceneLabel, speed: float) -> float:
    """How fast the gap to the binding constraint shrinks, m/s; NaN where nothing binds."""
    return math.nan if label.kind == "none" else float(speed - label.lead_speed)


def fact_targets(label: SceneLabel | None) -> dict[str, torch.Tensor]:
    """A keyframe's SceneFacts targets; without a label (real data): kind -1, NaNs (unused)."""
    if label is None:
        return {
            "lead": torch.tensor(-1, dtype=torch.long),
            "inverse_gap": torch.tensor(float("nan")),
            "decision": torch.tensor(float("nan")),
        }
    return {
        "lead": torch.tensor(LEAD_KINDS.index(label.kind), dtype=torch.long),
        "inverse_gap": torch.tensor(inverse_gap(label.gap_m), dtype=torch.float32),
        "decision": torch.tensor(label.decided_acceleration, dtype=torch.float32),
    }


def fact_outputs(facts: SceneFacts) -> dict[str, torch.Tensor]:
    """SceneFacts under the batch keys of fact_targets, for fact_terms."""
    return {
        "lead": facts.kind_logits,
        "inverse_gap": facts.inverse_gap,
        "decision": facts.decision,
    }


def fact_terms(
    out: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    *,
    gap_weight: float = 10.0,
    decision_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The SceneFacts loss over the samples that have each label (0 where none has).

    CE on the kind + gap_weight x MSE on the inverse gap + decision_weight x smooth L1 on the
    decided acceleration.
    """
    labelled = batch["lead"] >= 0
    loss = out["inverse_gap"].float().sum() * 0.0  # keeps the graph when nothing is labelled
    metrics: dict[str, float] = {}
    if labelled.any():
        logits, kinds = out["lead"].float()[labelled], batch["lead"][labelled]
        gap, gap_target = out["inverse_gap"].float()[labelled], batch["inverse_gap"][labelled]
        lead_loss = F.cross_entropy(logits, kinds)
        loss = loss + lead_loss + gap_weight * F.mse_loss(gap, gap_target)
        metrics["lead_ce"] = float(lead_loss.detach())
        metrics["lead_acc"] = float((logits.argmax(dim=-1) == kinds).float().mean())
        metrics["inverse_gap_mae"] = float((gap.detach() - gap_target).abs().mean())
    recorded = torch.isfinite(batch["decision"])
    if recorded.any():
        decision, target = out["decision"].float()[recorded], batch["decision"][recorded]
        loss = loss + decision_weight * F.smooth_l1_loss(decision, target)
        metrics["decision_mae"] = float((decision.detach() - target).abs().mean())
    return loss, metrics


def affordance_loss(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    gap_weight: float = 10.0,
    decision_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage A's per-token loss plus the frame-level terms.

    CE on the lead kind + gap_weight x MSE on the inverse gap + decision_weight x smooth L1 on the
    decided acceleration (on the keyframes that record it).
    """
    out = model(batch["pixels"], batch["speed"], batch.get("previous"))
    loss, metrics = vision_terms(out, batch)
    facts, fact_metrics = fact_terms(
        out, batch, gap_weight=gap_weight, decision_weight=decision_weight
    )
    loss = loss + facts
    if "closing_speed" in out:
        moved, motion_metrics = motion_terms(out, batch)
        loss, metrics = loss + moved, {**metrics, **motion_metrics}
    return loss, {**metrics, **fact_metrics}


def motion_terms(
    out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """The MotionHead's loss: smooth L1 on the closing speed and on the decision.

    Each term counts only the samples that have its label (something binds / recorded).
    """
    loss = out["closing_speed"].float().sum() * 0.0
    metrics: dict[str, float] = {}
    for key, target_key in (("closing_speed", "closing_speed"), ("motion_decision", "decision")):
        known = torch.isfinite(batch[target_key])
        if known.any():
            predicted, target = out[key].float()[known], batch[target_key][known]
            loss = loss + F.smooth_l1_loss(predicted, target)
            metrics[f"{key}_mae"] = float((predicted.detach() - target).abs().mean())
    return loss, metrics


def finetune_affordances(
    *,
    encoder: VisionEncoder,
    train_records: Sequence[KeyframeRecord],
    val_records: Sequence[KeyframeRecord],
    train_labels: Mapping[str, SceneLabel],
    val_labels: Mapping[str, SceneLabel],
    image_size: tuple[int, int],
    out_dir: str | Path,
    config: TrainConfig,
    max_val_images: int = 64,
    train_chain: Mapping[str, str] | None = None,
    val_chain: Mapping[str, str] | None = None,
    dist: DistContext | None = None,
    progress: bool = True,
) -> TrainSummary:
    """Fine-tune `encoder` in place; ends with the best-validation weights (resumable).

    With the worlds' sample chains ({token: the keyframe before}), also the MotionHead on two
    frames (the tower sees twice the images per step).
    """
    unit = encoder.patch_size * encoder.merge_size
    motion = train_chain is not None
    model = VisionAffordanceModel(encoder=encoder, motion=motion).train()
    train_set = FrontFrameDataset(
        records=train_records,
        labels=train_labels,
        image_size=image_size,
        unit=unit,
        chain=train_chain,
    )
    val_set = (
        FrontFrameDataset(
            records=val_records,
            labels=val_labels,
            image_size=image_size,
            unit=unit,
            limit=max_val_images,
            chain=val_chain if motion else None,
        )
        if val_records
        else None
    )
    return fit_tower(
        model,
        loss_fn=affordance_loss,
        train_set=train_set,
        val_set=val_set,
        config=config,
        out_dir=out_dir,
        dist=dist,
        progress=progress,
        description="vision affordances (stage A2)",
    )
