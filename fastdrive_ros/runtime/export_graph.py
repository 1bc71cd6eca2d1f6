"""The encoder + pruner + top-K as ONE torch module: what `fastdrive export` turns into ONNX.

Inputs `pixels [C, 3, H, W]` float32 (normalised); outputs `kept_tokens [K, D]` float32,
`kept_index [K]` int64 (global, ascending, camera-major) and `scores [N]` float32. Every shape is
fixed at export time. The top-K is nn.recon_pruner.topk_original_order, the same function the
torch selector uses: a sorted TopK on the scores, then the kept indices sorted by a second TopK
on their float32 cast (TensorRT's TopK takes float/half only; exact for N < 2**24).
"""

from __future__ import annotations

import torch

from fastdrive_ros.nn.recon_pruner import topk_original_order
from fastdrive_ros.runtime.keep_plan import KeepPlan

OUTPUT_NAMES: tuple[str, str, str] = ("kept_tokens", "kept_index", "scores")
INPUT_NAME = "pixels"


class EncoderPrunerGraph(torch.nn.Module):
    """Fixed-size vision encoder + token scorer + top-K, exportable as one graph.

    Args:
        encoder: module mapping pixels [C, 3, H, W] -> tokens [C, n, D] (e.g.
            nn.vision_export.ExportableVisionEncoder).
        scorer: module mapping tokens [C, n, D] -> scores [C, n] (e.g.
            nn.recon_pruner.ReconPruner), or None for the "none" selector (every token kept,
            scores are zeros).
        plan: the fixed top-K layout (keep_plan.plan_keep).
        compute_dtype: dtype the encoder and scorer run in (float16 for TensorRT 11 strongly typed
            FP16 builds); inputs and outputs stay float32.
    """

    def __init__(
        self,
        *,
        encoder: torch.nn.Module,
        scorer: torch.nn.Module | None,
        plan: KeepPlan,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if scorer is None and plan.mode != "all":
            raise ValueError(f"a {plan.mode!r} keep plan needs a scorer (pruner)")
        if compute_dtype not in (torch.float32, torch.float16):
            raise ValueError(f"compute_dtype must be float32 or float16, got {compute_dtype}")
        self.encoder = encoder
        self.scorer = scorer
        self.plan = plan
        self.compute_dtype = compute_dtype

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Map pixels [C, 3, H, W] -> (kept_tokens [K, D], kept_index [K], scores [N])."""
        plan = self.plan
        tokens = self.encoder(pixels.to(self.compute_dtype))  # [C, n, D]
        cams, n, dim = tokens.shape
        if (cams, n) != (plan.cameras, plan.tokens_per_camera):
            raise ValueError(
                f"encoder gave {cams} cameras x {n} tokens, the keep plan expects "
                f"{plan.cameras} x {plan.tokens_per_camera}"
            )
        flat_tokens = tokens.reshape(cams * n, dim)
        if self.scorer is None:
            index = torch.arange(cams * n, dtype=torch.long, device=pixels.device)
            scores = torch.zeros(cams * n, dtype=torch.float32, device=pixels.device)
            return flat_tokens.to(torch.float32), index, scores
        camera_scores = self.scorer(tokens).to(torch.float32)  # [C, n]
        scores = camera_scores.reshape(cams * n)
        if plan.mode == "global":
            index = topk_original_order(scores, plan.keep)
        else:
            parts = [
                topk_original_order(camera_scores[c], k) + c * n
                for c, k in enumerate(plan.keep_per_camera)
                if k > 0
            ]
            index = torch.cat(parts)  # camera-major, each part ascending: ascending overall
        kept = flat_tokens.index_select(0, index).to(torch.float32)
        return kept, index, scores
