"""Stage C / `fastdrive train-pruner`: ReconPruner trained with AFBR on a frozen vision encoder.

Each item is one camera image: its merged tokens (from the token cache, or from the frozen encoder
on the fly when caching is off), the image the encoder saw (0..1) and its nuScenes-FG mask. The
pruner's hard straight-through mask splits the tokens; one shared MAE-style decoder reconstructs
the foreground image from the kept ones and the background image from the dropped ones
(nn/afbr.py: alpha * L_fore + (1 - alpha) * L_back, each lam * (1 - SSIM) + (1 - lam) * MSE).
Validation adds the diagnostic of the model card: the share of foreground (token-level FG
fraction) that the top-K tokens keep at 25/50/75 % pruning, next to what an oracle keeps.

Decoder warm-up (`decoder_warmup_steps`, default DEFAULT_DECODER_WARMUP_STEPS = 150, the setting
the shipped default was trained with): the shared decoder first learns to paint the whole image
from all tokens (pruner untouched). From a fresh decoder, AFBR on the synthetic world
collapsed to "drop every token" (measured: FG recall at 50 % pruning fell to 0.05): the decoder
learns to paint roads, which are easy to guess from position alone, for all-zero inputs, and to
paint foreground tokens black in the background branch, so moving a token to the kept side only
raises the loss. A decoder that starts by mapping every token to its own pixels makes a kept
background token and a dropped foreground token costly, which is the paper's intended pull.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from fastdrive_ros.nn.afbr import afbr_step
from fastdrive_ros.nn.recon_decoder import ReconDecoder
from fastdrive_ros.nn.recon_pruner import ReconPruner
from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.images import cell_fraction, denormalize, load_pixels, read_label
from fastdrive_ros.train.loop import TrainConfig, Trainer, TrainSummary
from fastdrive_ros.train.records import KeyframeRecord, labelled_images
from fastdrive_ros.train.token_cache import TokenCache

PRUNER_PREFIX = "pruner."
RECALL_RATIOS = (0.25, 0.5, 0.75)
# The warm-up the shipped default was trained with; without it AFBR collapsed (docstring above).
DEFAULT_DECODER_WARMUP_STEPS = 150


class PrunerCollapseError(ValueError):
    """AFBR drove the kept fraction (tokens with S > 0) to ~0: the pruner drops every token."""


@dataclass(frozen=True)
class CollapseGuard:
    """Stop a run whose kept fraction stays below `min_kept` for `patience` training steps.

    A collapsed pruner still ranks tokens at inference (top-K needs no S > 0), but it learned
    nothing about foreground: its order is whatever the all-negative scores happen to be. The
    measured collapse (FG recall 0.05 at 50 %) took a few hundred steps to show in validation;
    the per-step kept fraction shows it at once. min_kept = 0 turns the guard off.
    """

    min_kept: float = 0.01
    patience: int = 50

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_kept < 1.0 or self.patience < 1:
            raise ValueError(
                f"collapse guard needs 0 <= min_kept < 1 and patience >= 1, "
                f"got {self.min_kept}, {self.patience}"
            )


class PrunerLoss:
    """pruner_loss plus the collapse guard on training steps (all ranks see the same mean).

    The kept fraction is averaged over ranks before the decision, so every rank stops at the
    same step (one rank raising alone would leave the others waiting in an all-reduce).
    """

    def __init__(
        self, guard: CollapseGuard | None = None, dist: DistContext | None = None
    ) -> None:
        self.guard = guard or CollapseGuard()
        self.dist = dist or DistContext()
        self.low_steps = 0
        self.steps = 0

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        loss, metrics = pruner_loss(model, batch)
        if model.training and self.guard.min_kept > 0:
            self.observe(self.dist.mean(metrics["kept_fraction"]))
        return loss, metrics

    def observe(self, kept: float) -> None:
        """Count one training step's kept fraction; raise PrunerCollapseError on a collapse."""
        self.steps += 1
        self.low_steps = self.low_steps + 1 if kept < self.guard.min_kept else 0
        if self.low_steps >= self.guard.patience:
            raise PrunerCollapseError(
                f"ReconPruner collapsed: the kept fraction (tokens with S > 0) stayed below "
                f"{self.guard.min_kept:g} for {self.low_steps} training steps (last "
                f"{kept:.4f}, {self.steps} steps into AFBR), so the pruner is learning to drop "
                f"every token. Remedy: warm the decoder up first (--decoder-warmup-steps, "
                f"default {DEFAULT_DECODER_WARMUP_STEPS}; raise it if you set it lower or "
                f"the data is larger) and/or lower --lr; --min-kept-fraction 0 turns this "
                f"check off."
            )


class AFBRModule(nn.Module):
    """ReconPruner + reconstruction decoder (+ an optional frozen encoder, not trained or saved).

    forward(batch) -> (AFBROutput, scores [B, n]); batch holds "tokens" [B, n, D] or, without a
    cache, "pixels" [B, 3, H, W] normalised for the frozen encoder.
    """

    def __init__(
        self,
        *,
        pruner: ReconPruner,
        decoder: ReconDecoder,
        grid_hw: tuple[int, int],
        alpha: float = 0.5,
        lam: float = 0.2,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if pruner.hidden_size != decoder.config.hidden_size:
            raise ValueError(
                f"pruner width {pruner.hidden_size} != decoder input width "
                f"{decoder.config.hidden_size}"
            )
        self.pruner = pruner
        self.decoder = decoder
        self.grid_hw = (int(grid_hw[0]), int(grid_hw[1]))
        self.alpha, self.lam = float(alpha), float(lam)
        # A plain attribute (not a submodule): frozen, never in the optimiser or the checkpoint.
        self.__dict__["frozen_encoder"] = encoder

    def tokens_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "tokens" in batch:
            return batch["tokens"].float()
        encoder = self.__dict__["frozen_encoder"]
        if encoder is None:
            raise ValueError("batch has no cached tokens and the module has no frozen encoder")
        with torch.no_grad():
            out = encoder(batch["pixels"].to(next(encoder.parameters()).dtype))  # [B, n, D]
        return out.float()

    def forward(self, batch: dict[str, torch.Tensor]):
        tokens = self.tokens_of(batch)
        out = afbr_step(
            pruner=self.pruner,
            decoder=self.decoder,
            tokens=tokens,
            image=batch["image"],
            fg_mask=batch["fg_mask"],
            grid_hw=self.grid_hw,
            alpha=self.alpha,
            lam=self.lam,
        )
        scores = None if self.training else self.pruner(tokens)
        return out, scores


class DecoderWarmupModule(nn.Module):
    """The decoder alone: all tokens -> the whole image (lam SSIM + MSE); no pruner involved."""

    def __init__(self, *, afbr: AFBRModule) -> None:
        super().__init__()
        self.decoder = afbr.decoder
        self.__dict__["afbr"] = afbr  # for tokens_of (frozen encoder); not a submodule
        self.lam = afbr.lam

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from fastdrive_ros.nn.afbr import recon_loss

        afbr = self.__dict__["afbr"]
        recon = self.decoder(afbr.tokens_of(batch), afbr.grid_hw)
        return recon_loss(recon, batch["image"], lam=self.lam)


def decoder_warmup_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
    loss = model(batch)
    return loss, {}


class PrunerDataset(Dataset):
    """(keyframe, camera) items that have a foreground mask: tokens or pixels, image, mask.

    Without a cache each item carries normalised pixels for the frozen encoder instead.
    """

    def __init__(
        self,
        *,
        records: Sequence[KeyframeRecord],
        image_size: tuple[int, int],
        unit: int,
        cache: TokenCache | None = None,
        limit: int | None = None,
        resize: str = "bilinear",
    ) -> None:
        if cache is not None and len(cache) != len(records):
            raise ValueError(
                f"token cache holds {len(cache)} samples, {len(records)} records were given"
            )
        items = labelled_images(records, "fg_masks", limit)
        if not items:
            raise ValueError(
                "no camera image has a foreground mask: build them with `fastdrive masks "
                "--dataroot ... --out DIR` and pass --masks DIR"
            )
        self.records = list(records)
        self.items = items
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.unit = int(unit)
        self.cache = cache
        self.resize = resize
        self.per_camera = (self.image_size[0] // unit) * (self.image_size[1] // unit)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, c = self.items[index]
        record = self.records[i]
        pixels = load_pixels([record.images[c]], self.image_size, self.resize)[0]
        mask = read_label(record.fg_masks[c], self.image_size, what="foreground mask")
        item = {
            "image": denormalize(pixels),
            "fg_mask": torch.from_numpy((mask > 0).astype("float32"))[None],
            "fg_fraction": torch.from_numpy(cell_fraction(mask, self.unit)),
        }
        if self.cache is not None:
            span = slice(c * self.per_camera, (c + 1) * self.per_camera)
            item["tokens"] = self.cache.tokens(i)[span]
        else:
            item["pixels"] = pixels
        return item


def collate_pruner(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def foreground_recall(scores: torch.Tensor, fraction: torch.Tensor, ratio: float) -> torch.Tensor:
    """Share of the total FG fraction held by the top-K tokens per row; [B, n] -> [B].

    K = floor(n (1 - ratio)), the inference budget (per camera here).
    """
    count = scores.shape[-1]
    keep = max(1, math.floor(count * (1.0 - ratio) + 1e-9))
    top = scores.topk(keep, dim=-1).indices
    kept = fraction.gather(-1, top).sum(dim=-1)
    return kept / fraction.sum(dim=-1).clamp(min=1e-6)


def pruner_loss(model: nn.Module, batch: dict[str, torch.Tensor]):
    """The AFBR loss; in evaluation also FG recall at 25/50/75 % against an oracle."""
    out, scores = model(batch)
    metrics: dict[str, float] = {
        "loss_fore": float(out.loss_fore.detach()),
        "loss_back": float(out.loss_back.detach()),
        "kept_fraction": float(out.kept_fraction),
    }
    if scores is not None:
        fraction = batch["fg_fraction"].float()
        has_fg = fraction.sum(dim=-1) > 0
        if bool(has_fg.any()):
            for ratio in RECALL_RATIOS:
                pct = int(round(ratio * 100))
                recall = foreground_recall(scores, fraction, ratio)[has_fg].mean()
                oracle = foreground_recall(fraction, fraction, ratio)[has_fg].mean()
                metrics[f"fg_recall_p{pct}"] = float(recall)
                metrics[f"fg_recall_oracle_p{pct}"] = float(oracle)
    return out.loss, metrics


def train_pruner(
    *,
    pruner: ReconPruner,
    decoder: ReconDecoder,
    train_records: Sequence[KeyframeRecord],
    val_records: Sequence[KeyframeRecord],
    image_size: tuple[int, int],
    unit: int,
    out_dir: str | Path,
    config: TrainConfig,
    train_cache: TokenCache | None = None,
    val_cache: TokenCache | None = None,
    encoder: nn.Module | None = None,
    alpha: float = 0.5,
    lam: float = 0.2,
    max_train_images: int | None = None,
    max_val_images: int | None = 96,
    decoder_warmup_steps: int = DEFAULT_DECODER_WARMUP_STEPS,
    guard: CollapseGuard | None = None,
    dist: DistContext | None = None,
    progress: bool = True,
    resize: str = "bilinear",
) -> TrainSummary:
    """AFBR-train `pruner` (in place; ends with the best-validation weights).

    Tokens come from the caches when given, else from `encoder` (frozen; its fixed-window twin
    at image_size is what runs). With `decoder_warmup_steps` > 0 the decoder is warmed up first
    for that many steps of `config`'s batch size and lr (out_dir/decoder_warmup). `guard`
    (default CollapseGuard()) raises PrunerCollapseError when the kept fraction collapses.
    """
    from fastdrive_ros.train.checkpoint import load_best, load_prefixed

    if train_cache is None and encoder is None:
        raise ValueError("train_pruner needs token caches or a frozen encoder")
    twin = None
    if encoder is not None and train_cache is None:
        dist_device = (dist or DistContext()).device
        twin = encoder.exportable(image_size).to(dist_device).eval()
        for parameter in twin.parameters():
            parameter.requires_grad_(False)
    grid_hw = (image_size[0] // unit, image_size[1] // unit)
    module = AFBRModule(
        pruner=pruner, decoder=decoder, grid_hw=grid_hw, alpha=alpha, lam=lam, encoder=twin
    ).train()
    train_set = PrunerDataset(
        records=train_records,
        image_size=image_size,
        unit=unit,
        cache=train_cache,
        limit=max_train_images,
        resize=resize,
    )
    val_set = None
    if val_records:
        val_set = PrunerDataset(
            records=val_records,
            image_size=image_size,
            unit=unit,
            cache=val_cache if train_cache is not None else None,
            limit=max_val_images,
            resize=resize,
        )
    if decoder_warmup_steps > 0:
        count = min(len(train_set), decoder_warmup_steps * config.batch_size)
        picks = [int(i * len(train_set) / count) for i in range(count)]
        warm = Trainer(
            model=DecoderWarmupModule(afbr=module).train(),
            loss_fn=decoder_warmup_loss,
            train_set=Subset(train_set, picks),
            val_set=None,
            config=replace(
                config,
                epochs=1,
                val_every=0,
                warmup_steps=min(config.warmup_steps, decoder_warmup_steps),
            ),
            out_dir=Path(out_dir) / "decoder_warmup",
            collate_fn=collate_pruner,
            dist=dist,
            progress=progress,
            description="decoder warm-up",
        )
        warm.fit()
        last = Path(out_dir) / "decoder_warmup" / "last"
        load_prefixed(decoder, last, "decoder.")
    trainer = Trainer(
        model=module,
        loss_fn=PrunerLoss(guard, dist),
        train_set=train_set,
        val_set=val_set,
        config=config,
        out_dir=out_dir,
        collate_fn=collate_pruner,
        dist=dist,
        progress=progress,
        description="ReconPruner AFBR",
    )
    summary = trainer.fit()
    load_best(pruner, out_dir, PRUNER_PREFIX)
    return summary


def summary_metrics(summary: TrainSummary) -> dict[str, Any]:
    """The last validation record of a run (FG recall etc.), for reports."""
    return dict(summary.val_history[-1]) if summary.val_history else {}
