"""Stage A: teach a from-scratch vision tower what is in each token cell (compact default only).

Nothing is pre-trained on our machines, so the compact tower first learns semantic features
cheaply: a per-token auxiliary head predicts each merged token's 28x28-px class histogram (soft
cross-entropy over SEMANTIC_CLASSES, from the synthetic class maps) and the mean colour of its
four 14x14 half-cells (keeps colour, e.g. traffic-light state, and coarse layout). Where the data
has depth maps (the synthetic world's z-buffer), a third head predicts each cell's mean and max
inverse depth, meant to put a lead vehicle's distance (what braking depends on) into the tokens;
train/token_probe.py found it did not make the tokens more informative for planning than class and
colour alone (issue 8's note). It trains on
single camera images, optionally random crops (token-aligned) to make each step cheaper; the
tower runs through its fixed-window twin (same weights, one batched attention per block). The aux
heads are training-only and never shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from fastdrive_ros.data.layout import FOREGROUND_IDS
from fastdrive_ros.nn.decision_reader import COLOUR_DIMS, DEPTH_DIMS
from fastdrive_ros.nn.vision import VisionEncoder
from fastdrive_ros.train.checkpoint import load_best
from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.images import (
    NUM_CLASSES,
    cell_colours,
    cell_depth,
    class_histograms,
    denormalize,
    load_pixels,
    read_label,
)
from fastdrive_ros.train.loop import TrainConfig, Trainer, TrainSummary
from fastdrive_ros.train.records import KeyframeRecord, labelled_images

ENCODER_PREFIX = "twin.encoder."


class VisionAuxModel(nn.Module):
    """The vision tower plus training-only heads: pixels [B, 3, h, w] -> per-token predictions."""

    def __init__(self, *, encoder: VisionEncoder) -> None:
        super().__init__()
        if not isinstance(encoder, VisionEncoder):
            raise TypeError(f"encoder must be a VisionEncoder, got {type(encoder).__name__}")
        self.twin = encoder.exportable(None)  # layout from each batch's (crop) size
        width = encoder.out_dim
        self.class_head = nn.Linear(width, NUM_CLASSES)
        self.colour_head = nn.Linear(width, COLOUR_DIMS)
        self.depth_head = nn.Linear(width, DEPTH_DIMS)

    @property
    def encoder(self) -> VisionEncoder:
        return self.twin.encoder

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """[B, 3, h, w] -> per-token predictions.

        {"classes": logits [B, n, NUM_CLASSES], "colours": [B, n, 12], "depth": [B, n, 2]
        (sigmoid, 0..1)}.
        """
        return self.token_heads(self.twin(pixels))

    def token_heads(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tower's tokens [B, n, D] -> the per-token predictions of `forward`."""
        return {
            "classes": self.class_head(tokens),
            "colours": self.colour_head(tokens),
            "depth": torch.sigmoid(self.depth_head(tokens)),
        }


class CameraImageDataset(Dataset):
    """(keyframe, camera) pairs: pixels and per-token targets.

    Targets: class histograms, half-cell colours and, where every image has a depth map,
    per-token inverse depth.

    With `crop` = (h, w) (multiples of the token cell) each item is a random token-aligned crop
    (torch's RNG, so the Trainer's seed fixes it); None gives whole images.
    """

    def __init__(
        self,
        *,
        records: Sequence[KeyframeRecord],
        image_size: tuple[int, int],
        unit: int,
        crop: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> None:
        height, width = image_size
        if height % unit or width % unit:
            raise ValueError(f"image size {image_size} is not a multiple of the {unit}-px cell")
        if crop is not None:
            ch, cw = crop
            if ch % unit or cw % unit or not (0 < ch <= height and 0 < cw <= width):
                raise ValueError(
                    f"crop {crop} must be positive multiples of {unit} px inside {image_size}"
                )
        items = labelled_images(records, "class_maps", limit)
        if not items:
            raise ValueError(
                "no camera image has a class map (class_maps/): vision pre-training needs them; "
                "the synthetic world writes them, `fastdrive masks --class-maps` for nuScenes"
            )
        self.records = list(records)
        self.items = items
        self.image_size = (int(height), int(width))
        self.unit = int(unit)
        self.crop = crop
        # depth is all or nothing: a batch mixing images with and without it cannot be stacked
        self.with_depth = all(
            c < len(records[i].depth_maps) and records[i].depth_maps[c] is not None
            for i, c in items
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, c = self.items[index]
        record = self.records[i]
        pixels = load_pixels([record.images[c]], self.image_size)[0]  # [3, H, W]
        classes = read_label(record.class_maps[c], self.image_size, what="class map")
        depth = (
            read_label(record.depth_maps[c], self.image_size, what="depth map")
            if self.with_depth
            else None
        )
        if self.crop is not None:
            ch, cw = self.crop
            rows = self.image_size[0] // self.unit - ch // self.unit
            cols = self.image_size[1] // self.unit - cw // self.unit
            top = int(torch.randint(0, rows + 1, ()).item()) * self.unit
            left = int(torch.randint(0, cols + 1, ()).item()) * self.unit
            pixels = pixels[:, top : top + ch, left : left + cw]
            classes = classes[top : top + ch, left : left + cw]
            depth = None if depth is None else depth[top : top + ch, left : left + cw]
        histogram = torch.from_numpy(class_histograms(np.ascontiguousarray(classes), self.unit))
        colours = cell_colours(denormalize(pixels), self.unit)
        item = {"pixels": pixels.contiguous(), "classes": histogram, "colours": colours}
        if depth is not None:
            item["depth"] = torch.from_numpy(cell_depth(np.ascontiguousarray(depth), self.unit))
        return item


def collate_images(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


_FOREGROUND = torch.tensor(sorted(FOREGROUND_IDS), dtype=torch.long)


def vision_loss(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    colour_weight: float = 1.0,
    depth_weight: float = 10.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft CE on class histograms + colour_weight x MSE on colours (+ depth_weight x MSE).

    The depth term (cell inverse depth) is there when the batch has it.

    Inverse depths are small (a 20-m car reads 0.1), so the depth MSE is weighted up to count
    about as much as the class term at the start of training.
    """
    return vision_terms(model(batch["pixels"]), batch, colour_weight, depth_weight)


def vision_terms(
    out: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    colour_weight: float = 1.0,
    depth_weight: float = 10.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """`vision_loss` from predictions already made (a model with more heads reuses it)."""
    logits = out["classes"]
    target = batch["classes"]
    log_probs = F.log_softmax(logits.float(), dim=-1)
    class_loss = -(target * log_probs).sum(dim=-1).mean()
    colour_loss = F.mse_loss(out["colours"].float(), batch["colours"])
    loss = class_loss + colour_weight * colour_loss
    extra: dict[str, float] = {}
    if "depth" in batch:
        depth_loss = F.mse_loss(out["depth"].float(), batch["depth"])
        loss = loss + depth_weight * depth_loss
        with torch.no_grad():
            # metres-free figure: mean error of the cell's nearest point, in inverse-depth units
            extra["depth_max_mae"] = float(
                (out["depth"][..., 1].float() - batch["depth"][..., 1]).abs().mean()
            )
        extra["depth_mse"] = float(depth_loss.detach())
    with torch.no_grad():
        dominant = target.argmax(dim=-1)
        accuracy = (logits.argmax(dim=-1) == dominant).float().mean()
        fg = _FOREGROUND.to(logits.device)
        fg_pred = log_probs.exp().index_select(-1, fg).sum(dim=-1)
        fg_true = target.index_select(-1, fg).sum(dim=-1)
        fg_error = (fg_pred - fg_true).abs().mean()
    return loss, {
        "class_ce": float(class_loss.detach()),
        "colour_mse": float(colour_loss.detach()),
        "class_acc": float(accuracy),
        "fg_share_mae": float(fg_error),
        **extra,
    }


def pretrain_vision(
    *,
    encoder: VisionEncoder,
    train_records: Sequence[KeyframeRecord],
    val_records: Sequence[KeyframeRecord],
    image_size: tuple[int, int],
    out_dir: str | Path,
    config: TrainConfig,
    crop: tuple[int, int] | None = None,
    colour_weight: float = 1.0,
    max_train_images: int | None = None,
    max_val_images: int = 48,
    dist: DistContext | None = None,
    progress: bool = True,
) -> TrainSummary:
    """Train `encoder` in place with the auxiliary heads; ends with the best-validation weights.

    `max_train_images` camera images (spread over the records) make the epoch; checkpoints
    (resumable) live in out_dir/last and out_dir/best.
    """
    unit = encoder.patch_size * encoder.merge_size
    model = VisionAuxModel(encoder=encoder).train()
    train_set = CameraImageDataset(
        records=train_records, image_size=image_size, unit=unit, crop=crop, limit=max_train_images
    )
    val_set = (
        CameraImageDataset(
            records=val_records, image_size=image_size, unit=unit, limit=max_val_images
        )
        if val_records
        else None
    )
    return fit_tower(
        model,
        loss_fn=lambda m, b: vision_loss(m, b, colour_weight=colour_weight),
        train_set=train_set,
        val_set=val_set,
        config=config,
        out_dir=out_dir,
        dist=dist,
        progress=progress,
        description="vision (stage A)",
    )


def fit_tower(
    model: VisionAuxModel,
    *,
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict]],
    train_set: Dataset,
    val_set: Dataset | None,
    config: TrainConfig,
    out_dir: str | Path,
    dist: DistContext | None,
    progress: bool,
    description: str,
) -> TrainSummary:
    """Train the tower with its training-only heads; load the best tower weights back."""
    trainer = Trainer(
        model=model,
        loss_fn=loss_fn,
        train_set=train_set,
        val_set=val_set,
        config=config,
        out_dir=out_dir,
        collate_fn=collate_images,
        dist=dist,
        progress=progress,
        description=description,
    )
    summary = trainer.fit()
    load_best(model.encoder, out_dir, ENCODER_PREFIX)
    return summary
