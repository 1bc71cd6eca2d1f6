"""AFBR training of ReconPruner: the loss falls, the scorer learns through the hard mask."""

from __future__ import annotations

import math

import pytest
import torch

from fastdrive_ros.nn.recon_decoder import ReconDecoder, ReconDecoderConfig
from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig
from fastdrive_ros.train.loop import TrainConfig, Trainer
from fastdrive_ros.train.pruner import (
    AFBRModule,
    CollapseGuard,
    PrunerCollapseError,
    PrunerLoss,
    collate_pruner,
    foreground_recall,
    pruner_loss,
)

WIDTH, GRID = 32, (2, 3)


def _module(seed: int = 0) -> AFBRModule:
    torch.manual_seed(seed)
    pruner = ReconPruner(config=ReconPrunerConfig.for_width(WIDTH))
    decoder = ReconDecoder(config=ReconDecoderConfig(hidden_size=WIDTH, num_layers=1, width=32))
    return AFBRModule(pruner=pruner, decoder=decoder, grid_hw=GRID)


def _batch(seed: int = 1, batch: int = 4) -> dict[str, torch.Tensor]:
    """Tokens that say whether their 28x28 cell is foreground; images bright there."""
    gen = torch.Generator().manual_seed(seed)
    cells = GRID[0] * GRID[1]
    fg_cells = torch.rand(batch, cells, generator=gen) < 0.5
    tokens = torch.randn(batch, cells, WIDTH, generator=gen) * 0.1
    tokens[..., 0] += torch.where(fg_cells, 2.0, -2.0)
    mask = fg_cells.float().view(batch, 1, *GRID)
    mask = mask.repeat_interleave(28, dim=2).repeat_interleave(28, dim=3)
    image = 0.2 + 0.6 * mask.expand(batch, 3, -1, -1) * torch.rand(batch, 3, 1, 1, generator=gen)
    return {
        "tokens": tokens,
        "image": image.contiguous(),
        "fg_mask": mask,
        "fg_fraction": fg_cells.float(),
    }


def test_gradient_reaches_the_scorer_through_the_hard_mask() -> None:
    module = _module().train()
    out, scores = module(_batch())
    assert scores is None  # scores are only recomputed for validation diagnostics
    out.loss.backward()
    pruner = module.pruner
    for name, param in (
        ("scorer", pruner.scorer.weight),
        ("query", pruner.query),
        ("layer", pruner.layer.mlp.down_proj.weight),
    ):
        assert param.grad is not None and float(param.grad.abs().sum()) > 0, name
    # the hard mask really is 0/1 in the forward pass
    assert 0.0 <= float(out.kept_fraction) <= 1.0


def test_a_short_afbr_run_lowers_the_loss() -> None:
    module = _module().train()
    batch = _batch()
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = pruner_loss(module, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-5:]) < 0.8 * losses[0], losses


def test_validation_reports_foreground_recall_against_an_oracle() -> None:
    module = _module().eval()
    with torch.no_grad():
        _, metrics = pruner_loss(module, _batch())
    for pct in (25, 50, 75):
        assert 0.0 <= metrics[f"fg_recall_p{pct}"] <= 1.0
        assert metrics[f"fg_recall_oracle_p{pct}"] >= metrics[f"fg_recall_p{pct}"] - 1e-6


def test_foreground_recall_counts_the_kept_share() -> None:
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    fraction = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    # keep 2 of 4 (50 % pruned): tokens 0 and 1 -> half of the foreground
    assert float(foreground_recall(scores, fraction, 0.5)) == pytest.approx(0.5)
    # keep 3 of 4: tokens 0, 1, 2 -> all of it
    assert float(foreground_recall(scores, fraction, 0.25)) == pytest.approx(1.0)
    assert float(foreground_recall(fraction, fraction, 0.5)) == pytest.approx(1.0)


def test_module_refuses_mismatched_widths_and_missing_tokens() -> None:
    pruner = ReconPruner(config=ReconPrunerConfig.for_width(WIDTH))
    decoder = ReconDecoder(config=ReconDecoderConfig(hidden_size=64, num_layers=1, width=32))
    with pytest.raises(ValueError, match="pruner width 32"):
        AFBRModule(pruner=pruner, decoder=decoder, grid_hw=GRID)
    module = _module()
    batch = _batch()
    del batch["tokens"]
    with pytest.raises(ValueError, match="no cached tokens"):
        module(batch)


def _items(count: int = 8) -> list[dict[str, torch.Tensor]]:
    batch = _batch(batch=count)
    return [{key: value[i] for key, value in batch.items()} for i in range(count)]


def _fit(module: AFBRModule, guard: CollapseGuard, out) -> None:
    config = TrainConfig(epochs=2, batch_size=2, lr=1e-3, ckpt_every=0)
    Trainer(
        model=module,
        loss_fn=PrunerLoss(guard),
        train_set=_items(),
        val_set=None,
        config=config,
        out_dir=out,
        collate_fn=collate_pruner,
        progress=False,
    ).fit()


def test_a_run_whose_kept_fraction_collapses_stops_naming_the_remedy(tmp_path) -> None:
    module = _module().train()
    with torch.no_grad():  # every score far below 0: nothing is kept, as in the measured collapse
        module.pruner.scorer.bias.fill_(-1e3)
    with pytest.raises(PrunerCollapseError) as caught:
        _fit(module, CollapseGuard(min_kept=0.01, patience=3), tmp_path / "collapsed")
    message = str(caught.value)
    assert "kept fraction" in message and "for 3 training steps" in message
    assert "--decoder-warmup-steps" in message and "--lr" in message
    assert isinstance(caught.value, ValueError)  # the CLI turns it into a named error, exit 2


def test_a_healthy_run_and_a_disabled_guard_do_not_stop(tmp_path) -> None:
    module = _module().train()
    with torch.no_grad():  # about half of the tokens above 0 at the start
        module.pruner.scorer.bias.fill_(0.0)
    _fit(module, CollapseGuard(min_kept=0.01, patience=3), tmp_path / "healthy")
    collapsed = _module().train()
    with torch.no_grad():
        collapsed.pruner.scorer.bias.fill_(-1e3)
    _fit(collapsed, CollapseGuard(min_kept=0.0, patience=1), tmp_path / "off")


def test_the_guard_counts_consecutive_low_steps_only() -> None:
    loss = PrunerLoss(CollapseGuard(min_kept=0.05, patience=3))
    for kept in (0.0, 0.0, 0.2, 0.0, 0.01):  # a good step resets the count
        loss.observe(kept)
    with pytest.raises(PrunerCollapseError, match="stayed below 0.05 for 3"):
        loss.observe(0.04)
    with pytest.raises(ValueError, match="min_kept"):
        CollapseGuard(min_kept=1.0)
