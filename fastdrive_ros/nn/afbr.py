"""Adversarial Foreground-Background Reconstruction (AFBR), the loss that trains ReconPruner.

The pruner's scores S become a hard keep mask M = 1[S > 0] whose gradient flows straight through
to S (M~ = S + stopgrad(M - S)). Kept tokens (M~ V, zeros elsewhere) must let the shared decoder
reconstruct the foreground-only image; dropped tokens ((1 - M~) V) the background-only image.
Keeping everything starves the background branch and dropping everything the foreground one, so
the mask is pushed to split tokens along the foreground/background line. The loop is in train/.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastdrive_ros.nn.recon_decoder import ReconDecoder
from fastdrive_ros.nn.recon_pruner import ReconPruner

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def straight_through_mask(scores: torch.Tensor) -> torch.Tensor:
    """Hard mask 1[S > 0] in the forward pass, identity gradient to S in the backward pass."""
    hard = (scores > 0).to(scores.dtype)
    return scores + (hard - scores).detach()


def _gaussian_window(channels: int, device: torch.device) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float32, device=device) - SSIM_WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = torch.outer(g, g)
    return window.expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [B, 3, H, W] images in 0..1.

    As Wang et al. 2004: Gaussian window 11, sigma 1.5, valid filtering, data range 1,
    K1 = 0.01, K2 = 0.03; computed in float32.
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two equal [B, C, H, W] tensors, got {a.shape} and {b.shape}")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW} px on each side for SSIM")
    a, b = a.float(), b.float()
    channels = a.shape[1]
    window = _gaussian_window(channels, a.device)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (numerator / denominator).mean()


def recon_loss(pred: torch.Tensor, target: torch.Tensor, *, lam: float = 0.2) -> torch.Tensor:
    """The paper's reconstruction loss: lam * (1 - SSIM) + (1 - lam) * MSE (lam = 0.2)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    return lam * (1.0 - ssim(pred, target)) + (1.0 - lam) * F.mse_loss(
        pred.float(), target.float()
    )


@dataclass
class AFBROutput:
    """One AFBR step.

    Attributes:
        loss: alpha * loss_fore + (1 - alpha) * loss_back (scalar, differentiable).
        loss_fore, loss_back: the two reconstruction losses (scalars).
        kept_fraction: share of tokens with S > 0 (scalar, detached).
        recon_fore, recon_back: [B, 3, gh*28, gw*28] reconstructions (for logging / previews).
    """

    loss: torch.Tensor
    loss_fore: torch.Tensor
    loss_back: torch.Tensor
    kept_fraction: torch.Tensor
    recon_fore: torch.Tensor
    recon_back: torch.Tensor


def afbr_step(
    *,
    pruner: ReconPruner,
    decoder: ReconDecoder,
    tokens: torch.Tensor,
    image: torch.Tensor,
    fg_mask: torch.Tensor,
    grid_hw: tuple[int, int],
    alpha: float = 0.5,
    lam: float = 0.2,
) -> AFBROutput:
    """The adversarial foreground/background reconstruction loss for one batch of cameras.

    tokens [B, n, D] frozen encoder output (n = gh * gw merged tokens); image [B, 3, H, W] in 0..1;
    fg_mask [B, 1, H, W] 0/1. Targets are image * fg_mask and image * (1 - fg_mask), resized to the
    decoder's output size (gh * 28, gw * 28) when H, W differ.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be [B, n, D], got {tuple(tokens.shape)}")
    batch = tokens.shape[0]
    if image.ndim != 4 or image.shape[:2] != (batch, 3):
        raise ValueError(f"image must be [{batch}, 3, H, W], got {tuple(image.shape)}")
    if fg_mask.shape != (batch, 1, *image.shape[-2:]):
        raise ValueError(
            f"fg_mask must be [{batch}, 1, {image.shape[-2]}, {image.shape[-1]}], "
            f"got {tuple(fg_mask.shape)}"
        )
    scores = pruner(tokens)  # [B, n]
    mask = straight_through_mask(scores).unsqueeze(-1).to(tokens.dtype)  # [B, n, 1]
    kept, dropped = mask * tokens, (1.0 - mask) * tokens
    recon = decoder(torch.cat([kept, dropped], dim=0), grid_hw)
    recon_fore, recon_back = recon[:batch], recon[batch:]
    target_image, target_mask = _targets_at(image, fg_mask, tuple(recon.shape[-2:]))
    target_fore = target_image * target_mask
    target_back = target_image * (1.0 - target_mask)
    loss_fore = recon_loss(recon_fore, target_fore, lam=lam)
    loss_back = recon_loss(recon_back, target_back, lam=lam)
    return AFBROutput(
        loss=alpha * loss_fore + (1.0 - alpha) * loss_back,
        loss_fore=loss_fore,
        loss_back=loss_back,
        kept_fraction=(scores.detach() > 0).float().mean(),
        recon_fore=recon_fore,
        recon_back=recon_back,
    )


def _targets_at(
    image: torch.Tensor, fg_mask: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image (bilinear, antialiased) and mask (nearest) at the decoder's output size."""
    image, fg_mask = image.float(), fg_mask.float()
    if tuple(image.shape[-2:]) == size:
        return image, fg_mask
    image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    fg_mask = F.interpolate(fg_mask, size=size, mode="nearest-exact")
    return image, fg_mask
