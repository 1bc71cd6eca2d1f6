"""The pieces of a VLA bundle the encoder+pruner runtimes need, loaded once and shared.

The planner engineer's `VLA.from_pretrained(folder)` owns the on-disk format; this module only
picks out the vision encoder, the pruner and the few config values export and backends need, and
turns load failures into a ModelFileError that names the folder and what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from fastdrive_ros.runtime.errors import ModelFileError
from fastdrive_ros.runtime.hashing import state_sha256

log = logging.getLogger(__name__)

BudgetMode = Literal["global", "per_camera"]


@dataclass
class ModelParts:
    """Encoder + pruner of one model, with what export and the backends need to know about them.

    Attributes:
        encoder: VisionEncoder-like module: pixels [C, 3, H, W] -> VisualTokens (tokens [N, D]).
        pruner: ReconPruner-like module (forward [B, n, D] -> [B, n]; select(visual, keep)), or
            None when the bundle has no pruner.
        image_size: (H, W) every camera is resized to.
        camera_names: camera order of the batch.
        tokens_per_camera: n, merged tokens per camera at image_size.
        token_dim: D, merged token width.
        make_exportable: image_size -> module pixels [C, 3, H, W] -> tokens [C, n, D] sharing the
            encoder's weights (nn.vision_export.ExportableVisionEncoder).
        patch_size: ViT patch size in pixels (grid_thw is in patch units).
        default_prune_ratio: the bundle's prune ratio p (fraction dropped).
        budget: the pruner's budget mode ("global" or "per_camera").
        folder: where the bundle was loaded from, if it was.
    """

    encoder: torch.nn.Module
    pruner: torch.nn.Module | None
    image_size: tuple[int, int]
    camera_names: tuple[str, ...]
    tokens_per_camera: int
    token_dim: int
    make_exportable: Callable[[tuple[int, int]], torch.nn.Module]
    patch_size: int = 14
    default_prune_ratio: float = 0.5
    budget: BudgetMode = "global"
    folder: Path | None = None
    _hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        height, width = self.image_size
        if height <= 0 or width <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if not self.camera_names:
            raise ValueError("camera_names must not be empty")
        if self.tokens_per_camera <= 0 or self.token_dim <= 0:
            raise ValueError("tokens_per_camera and token_dim must be positive")
        if self.budget not in ("global", "per_camera"):
            raise ValueError(f"budget must be 'global' or 'per_camera', got {self.budget!r}")

    @property
    def cameras(self) -> int:
        return len(self.camera_names)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """[C, 3, H, W] of one frame."""
        return (self.cameras, 3, self.image_size[0], self.image_size[1])

    @property
    def grid_thw(self) -> tuple[tuple[int, int, int], ...]:
        """(C, 3) per-camera (t, h, w) in patch units (t = 1: a still image)."""
        height, width = self.image_size
        row = (1, height // self.patch_size, width // self.patch_size)
        return tuple(row for _ in self.camera_names)

    def model_hash(self) -> str:
        """state_sha256 of encoder + pruner (computed once; what an export records)."""
        if self._hash is None:
            self._hash = state_sha256({"encoder": self.encoder, "pruner": self.pruner})
        return self._hash

    def selector(self, name: str, **kwargs: Any) -> Any:
        """The EncoderStageSelector called `name` (None for "none": keep everything)."""
        if name == "none":
            return None
        if name == "reconpruner":
            if self.pruner is None:
                where = self.folder or "this model"
                raise ModelFileError(
                    where,
                    "the bundle has no ReconPruner",
                    "train one (`fastdrive train-pruner`) or pick another selector",
                )
            return self.pruner
        from fastdrive_ros.nn.registry import make_selector, selector_stage

        if selector_stage(name) != "encoder":
            raise ValueError(
                f"selector {name!r} runs inside the planner (LLM stage), not in the encoder "
                "backend: use selector 'none' here and give it to the planner"
            )
        return make_selector(name, **kwargs)


def parts_from_modules(
    *,
    encoder: torch.nn.Module,
    pruner: torch.nn.Module | None,
    image_size: tuple[int, int],
    camera_names: Sequence[str],
    default_prune_ratio: float = 0.5,
    folder: str | Path | None = None,
) -> ModelParts:
    """ModelParts around an nn.vision.VisionEncoder and an optional nn.recon_pruner.ReconPruner."""
    height, width = int(image_size[0]), int(image_size[1])
    unit = int(encoder.patch_size) * int(encoder.merge_size)
    budget = getattr(getattr(pruner, "config", None), "budget", "global")

    def make_exportable(size: tuple[int, int]) -> torch.nn.Module:
        return encoder.exportable(size)

    return ModelParts(
        encoder=encoder,
        pruner=pruner,
        image_size=(height, width),
        camera_names=tuple(camera_names),
        tokens_per_camera=(height // unit) * (width // unit),
        token_dim=int(encoder.out_dim),
        make_exportable=make_exportable,
        patch_size=int(encoder.patch_size),
        default_prune_ratio=float(default_prune_ratio),
        budget=budget,
        folder=Path(folder) if folder is not None else None,
    )


def parts_from_vla(vla: Any, *, folder: str | Path | None = None) -> ModelParts:
    """ModelParts sharing the modules of an already loaded nn.vla.VLA (no copy of the weights)."""
    config = vla.config
    return parts_from_modules(
        encoder=vla.vision,
        pruner=getattr(vla, "pruner", None),
        image_size=tuple(config.image_size),
        camera_names=tuple(config.camera_names),
        default_prune_ratio=float(config.default_prune_ratio),
        folder=folder,
    )


def parts_from_config(config: Any, *, seed: int = 0) -> ModelParts:
    """Encoder + pruner of an nn.vla.VLAConfig with random (seeded) weights, no planner.

    For benchmarks and tests of the compact default's shapes before trained weights exist.
    """
    from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig
    from fastdrive_ros.nn.vision import VisionEncoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = VisionEncoder(config=config.qwen_config().vision_config).eval()
        pruner = None
        if config.pruner is not None:
            pruner = ReconPruner(config=ReconPrunerConfig.from_dict(config.pruner)).eval()
    return parts_from_modules(
        encoder=encoder,
        pruner=pruner,
        image_size=tuple(config.image_size),
        camera_names=tuple(config.camera_names),
        default_prune_ratio=float(config.default_prune_ratio),
    )


def load_vla(folder: str | Path, *, device: str | torch.device = "cpu") -> Any:
    """VLA.from_pretrained(folder) with its failures turned into a ModelFileError naming folder."""
    from fastdrive_ros.nn.vla import VLA

    path = Path(folder)
    try:
        return VLA.from_pretrained(path, device=device)
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelFileError(
            path,
            f"cannot load the model: {exc}",
            "rebuild it (`fastdrive build-default --out DIR`) or point model_dir / --model at an "
            "intact bundle or Qwen2.5-VL / Impromptu-VLA checkpoint folder (config.json + "
            "*.safetensors)",
        ) from exc


def load_model_parts(folder: str | Path, *, device: str | torch.device = "cpu") -> ModelParts:
    """Load a VLA bundle folder and return its encoder-side parts.

    Raises ModelFileError naming the folder (or the file the loader named) when it is missing or
    cannot be loaded.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ModelFileError(
            path,
            "model folder not found",
            "pass --model with a folder made by `fastdrive build-default` (the default model is "
            "models/default) or a local Qwen2.5-VL / Impromptu-VLA checkpoint",
        )
    return parts_from_vla(load_vla(path, device=device), folder=path)
