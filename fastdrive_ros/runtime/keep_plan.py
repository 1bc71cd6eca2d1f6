"""How many tokens the exported graph keeps, and whether it ranks them globally or per camera.

K is fixed at export time (TensorRT needs a constant K), so the plan is part of the exported model.
One TopK over all cameras is the paper's global budget; TensorRT's TopK takes K < 3840, so a
global K at or above that limit (or a pruner trained with per-camera budgets) is split over the
cameras with `per_camera_keep`, which sums to the same K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastdrive_ros.nn.selection import keep_count, per_camera_keep

TRT_TOPK_MAX_K = 3839  # TensorRT's TopK requires K < 3840
EXPORTABLE_SELECTORS: tuple[str, ...] = ("reconpruner", "none")

KeepMode = Literal["global", "per_camera", "all"]


@dataclass(frozen=True)
class KeepPlan:
    """Which top-K the graph computes.

    Attributes:
        mode: "global" (one TopK over N), "per_camera" (one TopK per camera) or "all" (no
            pruning: the "none" selector keeps every token).
        cameras: C, number of cameras in the batch.
        tokens_per_camera: n, merged tokens per camera (fixed resolution: equal for all cameras).
        keep: K, total kept tokens.
        keep_per_camera: (C,) budgets when mode is "per_camera", else empty.
        prune_ratio: p, the fraction of tokens dropped (K = floor(N * (1 - p))).
        reason: why this mode was chosen (logged and stored in the ONNX metadata).
    """

    mode: KeepMode
    cameras: int
    tokens_per_camera: int
    keep: int
    keep_per_camera: tuple[int, ...]
    prune_ratio: float
    reason: str

    def __post_init__(self) -> None:
        if self.cameras < 1 or self.tokens_per_camera < 1:
            raise ValueError(
                f"need cameras >= 1 and tokens >= 1, got {self.cameras}, {self.tokens_per_camera}"
            )
        if not 1 <= self.keep <= self.total:
            raise ValueError(f"keep must be in 1..{self.total}, got {self.keep}")
        if self.mode == "per_camera":
            if len(self.keep_per_camera) != self.cameras or sum(self.keep_per_camera) != self.keep:
                raise ValueError(
                    f"per-camera budgets {self.keep_per_camera} must be {self.cameras} values "
                    f"adding up to {self.keep}"
                )
            if any(not 0 <= k <= self.tokens_per_camera for k in self.keep_per_camera):
                raise ValueError(f"a per-camera budget is outside 0..{self.tokens_per_camera}")
        elif self.keep_per_camera:
            raise ValueError(f"keep_per_camera is only for mode 'per_camera', not {self.mode!r}")
        if self.mode == "all" and self.keep != self.total:
            raise ValueError("mode 'all' keeps every token")

    @property
    def total(self) -> int:
        """N, all merged tokens of all cameras."""
        return self.cameras * self.tokens_per_camera

    @property
    def selector_keep(self) -> int | list[int]:
        """The `keep` argument of `EncoderStageSelector.select` that reproduces this plan."""
        return list(self.keep_per_camera) if self.mode == "per_camera" else self.keep

    @property
    def topk_sizes(self) -> tuple[int, ...]:
        """K of every TopK the graph holds (the sort of kept indices is a TopK of the same K)."""
        if self.mode == "global":
            return (self.keep,)
        if self.mode == "per_camera":
            return tuple(k for k in self.keep_per_camera if k > 0)
        return ()

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "cameras": self.cameras,
            "tokens_per_camera": self.tokens_per_camera,
            "keep": self.keep,
            "keep_per_camera": list(self.keep_per_camera),
            "prune_ratio": self.prune_ratio,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict) -> KeepPlan:
        return cls(
            mode=data["mode"],
            cameras=int(data["cameras"]),
            tokens_per_camera=int(data["tokens_per_camera"]),
            keep=int(data["keep"]),
            keep_per_camera=tuple(int(k) for k in data.get("keep_per_camera", ())),
            prune_ratio=float(data["prune_ratio"]),
            reason=str(data.get("reason", "")),
        )


def plan_keep(
    *,
    selector: str,
    cameras: int,
    tokens_per_camera: int,
    prune_ratio: float,
    budget: Literal["global", "per_camera"] = "global",
    max_topk: int = TRT_TOPK_MAX_K,
) -> KeepPlan:
    """Choose the top-K layout for the exported graph.

    Raises ValueError when the selector cannot be exported or one camera alone needs K > max_topk.
    """
    if selector not in EXPORTABLE_SELECTORS:
        raise ValueError(
            f"selector {selector!r} cannot be exported into the encoder graph (exportable: "
            f"{', '.join(EXPORTABLE_SELECTORS)}); use the torch backend for it"
        )
    if budget not in ("global", "per_camera"):
        raise ValueError(f"budget must be 'global' or 'per_camera', got {budget!r}")
    total = cameras * tokens_per_camera
    if selector == "none":
        return KeepPlan(
            mode="all",
            cameras=cameras,
            tokens_per_camera=tokens_per_camera,
            keep=total,
            keep_per_camera=(),
            prune_ratio=0.0,
            reason="selector 'none' keeps every token (no TopK in the graph)",
        )
    keep = keep_count(total, prune_ratio)
    if budget == "global" and keep <= max_topk:
        return KeepPlan(
            mode="global",
            cameras=cameras,
            tokens_per_camera=tokens_per_camera,
            keep=keep,
            keep_per_camera=(),
            prune_ratio=prune_ratio,
            reason=f"one TopK over all {total} tokens (K={keep} <= {max_topk})",
        )
    budgets = tuple(per_camera_keep([tokens_per_camera] * cameras, prune_ratio))
    if max(budgets) > max_topk:
        raise ValueError(
            f"one camera alone keeps {max(budgets)} tokens, above TensorRT's TopK limit "
            f"(K <= {max_topk}): raise the prune ratio or lower the image size"
        )
    reason = (
        "the pruner was trained with per-camera budgets"
        if budget == "per_camera"
        else f"global K={keep} exceeds TensorRT's TopK limit ({max_topk}), split per camera"
    )
    return KeepPlan(
        mode="per_camera",
        cameras=cameras,
        tokens_per_camera=tokens_per_camera,
        keep=keep,
        keep_per_camera=budgets,
        prune_ratio=prune_ratio,
        reason=reason,
    )
