"""AFBR training pieces: straight-through mask, SSIM, reconstruction loss, decoder, one step."""

from __future__ import annotations

import pytest
import torch

from fastdrive_ros.nn.afbr import afbr_step, recon_loss, ssim, straight_through_mask
from fastdrive_ros.nn.recon_decoder import ReconDecoder, ReconDecoderConfig, sincos_2d
from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig

torch.set_num_threads(2)
WIDTH = 64


def test_straight_through_mask_is_hard_forward_identity_backward() -> None:
    scores = torch.tensor([-1.5, -0.0, 0.0, 1e-4, 2.0], requires_grad=True)
    mask = straight_through_mask(scores)
    assert mask.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # M = 1[S > 0]
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (mask * weights).sum().backward()
    assert scores.grad.tolist() == weights.tolist()  # dM~/dS = 1


def test_ssim_properties() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 40, generator=gen)
    assert abs(float(ssim(image, image)) - 1.0) < 1e-6
    noisy = (image + 0.1 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    very_noisy = (image + 0.4 * torch.randn(image.shape, generator=gen)).clamp(0, 1)
    s_noisy, s_very = float(ssim(image, noisy)), float(ssim(image, very_noisy))
    assert 1.0 > s_noisy > s_very > 0.0
    torch.testing.assert_close(ssim(image, noisy), ssim(noisy, image))  # symmetric
    with pytest.raises(ValueError, match="11 px"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_ssim_matches_reference_formula_on_constant_images() -> None:
    a = torch.full((1, 3, 16, 16), 0.2)
    b = torch.full((1, 3, 16, 16), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)  # no variance: luminance term only
    assert abs(float(ssim(a, b)) - expected) < 2e-4  # float32 variance round-off


def test_recon_loss_mixes_ssim_and_mse() -> None:
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.rand(1, 3, 28, 28, generator=gen), torch.rand(1, 3, 28, 28, generator=gen)
    mse = float(((pred - target) ** 2).mean())
    dssim = 1.0 - float(ssim(pred, target))
    assert abs(float(recon_loss(pred, target)) - (0.2 * dssim + 0.8 * mse)) < 1e-6
    assert abs(float(recon_loss(pred, target, lam=1.0)) - dssim) < 1e-6
    assert float(recon_loss(target, target)) < 1e-6


def test_decoder_paints_28px_patches_in_raster_order() -> None:
    torch.manual_seed(0)
    config = ReconDecoderConfig(hidden_size=WIDTH, num_layers=2, width=32)
    decoder = ReconDecoder(config=config)
    assert config.heads == 1 and config.patch_pixels == 28
    out = decoder(torch.randn(2, 12, WIDTH), (3, 4))
    assert out.shape == (2, 3, 3 * 28, 4 * 28)
    # the head's patch for token 5 (row 1, col 1) lands at pixels [28:56, 28:56]
    decoder.head.weight.data.zero_()
    decoder.head.bias.data.zero_()
    with torch.no_grad():
        image = decoder(torch.randn(1, 12, WIDTH), (3, 4))
    assert float(image.abs().max()) == 0.0
    with pytest.raises(ValueError, match="3x5"):
        decoder(torch.randn(1, 12, WIDTH), (3, 5))


def test_decoder_knows_where_a_zeroed_token_is() -> None:
    """Dropped tokens are zero vectors: the position embedding must still tell them apart."""
    torch.manual_seed(0)
    decoder = ReconDecoder(config=ReconDecoderConfig(hidden_size=WIDTH, num_layers=1, width=32))
    with torch.no_grad():
        image = decoder(torch.zeros(1, 4, WIDTH), (2, 2))
    patches = image.unfold(2, 28, 28).unfold(3, 28, 28)  # [1, 3, 2, 2, 28, 28]
    assert float((patches[:, :, 0, 0] - patches[:, :, 1, 1]).abs().max()) > 1e-4
    emb = sincos_2d(2, 3, 8, device=torch.device("cpu"), dtype=torch.float32)
    assert emb.shape == (6, 8) and torch.unique(emb, dim=0).shape[0] == 6


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    pruner = ReconPruner(config=ReconPrunerConfig.for_width(WIDTH))
    decoder = ReconDecoder(config=ReconDecoderConfig(hidden_size=WIDTH, num_layers=2, width=32))
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(2, 6, WIDTH, generator=gen)
    image = torch.rand(2, 3, 56, 84, generator=gen)
    fg_mask = (torch.rand(2, 1, 56, 84, generator=gen) > 0.5).float()
    return pruner, decoder, tokens, image, fg_mask


def test_afbr_step_gradient_reaches_the_scorer_through_the_hard_mask() -> None:
    pruner, decoder, tokens, image, fg_mask = _setup()
    out = afbr_step(
        pruner=pruner, decoder=decoder, tokens=tokens, image=image, fg_mask=fg_mask, grid_hw=(2, 3)
    )
    assert out.recon_fore.shape == out.recon_back.shape == (2, 3, 56, 84)
    torch.testing.assert_close(out.loss, 0.5 * out.loss_fore + 0.5 * out.loss_back)
    with torch.no_grad():
        expected_kept = (pruner(tokens) > 0).float().mean()
    torch.testing.assert_close(out.kept_fraction, expected_kept)
    out.loss.backward()
    # scores only feed the mask, so any gradient here came through the straight-through estimator
    for param in (pruner.scorer.weight, pruner.query, pruner.layer.mlp.down_proj.weight):
        assert param.grad is not None and float(param.grad.abs().sum()) > 0
    assert decoder.head.weight.grad is not None


def test_afbr_step_uses_kept_tokens_for_foreground_and_dropped_for_background() -> None:
    pruner, decoder, tokens, image, fg_mask = _setup()
    with torch.no_grad():
        out = afbr_step(
            pruner=pruner,
            decoder=decoder,
            tokens=tokens,
            image=image,
            fg_mask=fg_mask,
            grid_hw=(2, 3),
            alpha=0.3,
        )
        mask = (pruner(tokens) > 0).float().unsqueeze(-1)
        fore = decoder(mask * tokens, (2, 3))
        back = decoder((1 - mask) * tokens, (2, 3))
        loss_fore = recon_loss(fore, image * fg_mask)
        loss_back = recon_loss(back, image * (1 - fg_mask))
    torch.testing.assert_close(out.recon_fore, fore, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.recon_back, back, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss_fore, loss_fore, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.loss, 0.3 * loss_fore + 0.7 * loss_back, atol=1e-6, rtol=1e-5)


def test_afbr_training_lowers_the_loss() -> None:
    """A few optimiser steps on one batch reduce the AFBR loss (the pieces train together)."""
    pruner, decoder, tokens, image, fg_mask = _setup(3)
    params = list(pruner.parameters()) + list(decoder.parameters())
    optimiser = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(8):
        out = afbr_step(
            pruner=pruner,
            decoder=decoder,
            tokens=tokens,
            image=image,
            fg_mask=fg_mask,
            grid_hw=(2, 3),
        )
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def test_afbr_step_resizes_targets_and_checks_shapes() -> None:
    pruner, decoder, tokens, _, _ = _setup()
    image = torch.rand(2, 3, 90, 120)
    fg_mask = torch.zeros(2, 1, 90, 120)
    fg_mask[..., :45, :] = 1.0
    out = afbr_step(
        pruner=pruner, decoder=decoder, tokens=tokens, image=image, fg_mask=fg_mask, grid_hw=(2, 3)
    )
    assert out.recon_fore.shape == (2, 3, 56, 84)
    with pytest.raises(ValueError, match="fg_mask"):
        afbr_step(
            pruner=pruner,
            decoder=decoder,
            tokens=tokens,
            image=image,
            fg_mask=fg_mask[:, :, :10],
            grid_hw=(2, 3),
        )
    with pytest.raises(ValueError, match="alpha"):
        afbr_step(
            pruner=pruner,
            decoder=decoder,
            tokens=tokens,
            image=image,
            fg_mask=fg_mask,
            grid_hw=(2, 3),
            alpha=1.5,
        )
