"""What `fastdrive train-pruner` does: load a frozen encoder, read data, cache, AFBR-train, save.

The same job serves the compact bundle on a CPU and a real Qwen2.5-VL / Impromptu-VLA checkpoint
on nuScenes with `fastdrive masks` foreground masks under torchrun on GPUs (features cached on
the GPU by every rank, a share each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.loop import TrainConfig
from fastdrive_ros.train.pruner import DEFAULT_DECODER_WARMUP_STEPS


@dataclass(frozen=True)
class PrunerJob:
    """Arguments of one train-pruner run (see the CLI's --help for each)."""

    model: Path
    dataroot: Path
    version: str
    out: Path
    config: TrainConfig
    mask_root: Path | None = None
    split: str = "train"
    val_split: str = "val"
    val_dataroot: Path | None = None
    val_version: str | None = None
    cameras: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None
    work_dir: Path | None = None
    cache: bool = True
    decoder_layers: int = 6
    decoder_width: int | None = None
    alpha: float = 0.5
    lam: float = 0.2
    decoder_warmup_steps: int = DEFAULT_DECODER_WARMUP_STEPS
    min_kept_fraction: float = 0.01
    collapse_patience: int = 50
    max_samples: int | None = None
    max_train_images: int | None = None
    max_val_samples: int | None = 64
    max_val_images: int = 96
    cache_workers: int = 1
    threads: int = 1
    install: bool = False


@dataclass
class FrozenEncoder:
    """The encoder to train a pruner for, and what the model folder says about it."""

    encoder: torch.nn.Module
    image_size: tuple[int, int]
    cameras: tuple[str, ...]
    pruner_config: dict
    is_bundle: bool
    resize: str = "bilinear"


def load_frozen_encoder(
    model: Path,
    *,
    device: torch.device,
    image_size: tuple[int, int] | None,
    cameras: tuple[str, ...] | None,
) -> FrozenEncoder:
    """Our bundle (its vision tower) or a HF Qwen2.5-VL checkpoint (vision weights only)."""
    from fastdrive_ros.nn.recon_pruner import ReconPrunerConfig
    from fastdrive_ros.nn.vision import VisionEncoder
    from fastdrive_ros.nn.vla import FORMAT, VLA
    from fastdrive_ros.nn.vla_checkpoint import CHECKPOINT_IMAGE_SIZE

    path = Path(model) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: --model takes a bundle (fastdrive build-default) or a local "
            "Qwen2.5-VL / Impromptu-VLA checkpoint folder (config.json + *.safetensors)"
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("format") == FORMAT:
        vla = VLA.from_pretrained(model)
        encoder = vla.vision
        size = image_size or vla.config.image_size
        chosen = cameras or vla.config.camera_names
        pruner = vla.config.pruner or ReconPrunerConfig.for_width(encoder.out_dim).to_dict()
        bundle = True
        resize = vla.config.resize
    else:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        encoder = VisionEncoder.from_pretrained(model, dtype=dtype)
        # the checkpoint's own input (nn/resize.py); an asked size keeps Qwen's bicubic
        size = image_size or CHECKPOINT_IMAGE_SIZE
        resize = "impromptu" if tuple(size) == tuple(CHECKPOINT_IMAGE_SIZE) else "bicubic"
        chosen = cameras or CAMERA_NAMES[:1]
        pruner = ReconPrunerConfig.for_width(encoder.out_dim).to_dict()
        bundle = False
    unit = encoder.patch_size * encoder.merge_size
    if size[0] % unit or size[1] % unit:
        raise ValueError(f"image size {size} must be a multiple of {unit} px (patch x merge)")
    encoder = encoder.to(device).eval()
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return FrozenEncoder(
        encoder, (int(size[0]), int(size[1])), tuple(chosen), pruner, bundle, resize
    )


def decoder_width(asked: int | None, token_width: int) -> int:
    """The reconstruction decoder's width: `asked`, else the paper's, the LLM width D.

    The paper's decoder is 6 layers at the LLM width (2048 at 3B scale: about 0.4B parameters,
    training only); the merged tokens come out of the vision merger at that width already. The
    shipped compact default was trained with 2 layers at width 256 (= its D) to fit a 2-core CPU
    (train/build_plan.py).
    """
    return int(asked) if asked is not None else int(token_width)


def run_pruner_job(job: PrunerJob, *, dist: DistContext, progress: bool = True) -> Path:
    """Train, save out/pruner (ReconPruner.save) and out/summary.json; returns out/pruner."""
    from fastdrive_ros.nn.recon_decoder import ReconDecoder, ReconDecoderConfig
    from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig
    from fastdrive_ros.train.pruner import CollapseGuard, train_pruner
    from fastdrive_ros.train.workspace import DataSpec, Workspace

    frozen = load_frozen_encoder(
        job.model, device=dist.device, image_size=job.image_size, cameras=job.cameras
    )
    if job.install and not frozen.is_bundle:
        raise ValueError("--install writes into our bundles only, not into a HF checkpoint")
    encoder = frozen.encoder
    unit = encoder.patch_size * encoder.merge_size
    space = Workspace(job.work_dir or job.out / "work")
    train_data = DataSpec(
        Path(job.dataroot), job.version, job.split, job.mask_root, job.max_samples
    )
    val_data = DataSpec(
        Path(job.val_dataroot or job.dataroot),
        job.val_version or job.version,
        job.val_split,
        job.mask_root,
        job.max_val_samples,
    )
    train_records = space.records(train_data, cameras=frozen.cameras, progress=progress)
    val_records = space.records(val_data, cameras=frozen.cameras, progress=progress)
    caches = [None, None]
    if job.cache:
        caches = [
            space.token_cache(
                encoder=encoder,
                data=data,
                records=records,
                image_size=frozen.image_size,
                dist=dist,
                workers=job.cache_workers,
                threads=job.threads,
                progress=progress,
                resize=frozen.resize,
            )
            for data, records in ((train_data, train_records), (val_data, val_records))
        ]
    torch.manual_seed(job.config.seed)
    pruner = ReconPruner(config=ReconPrunerConfig.from_dict(frozen.pruner_config))
    decoder = ReconDecoder(
        config=ReconDecoderConfig(
            hidden_size=encoder.out_dim,
            num_layers=job.decoder_layers,
            width=decoder_width(job.decoder_width, encoder.out_dim),
        )
    )
    summary = train_pruner(
        pruner=pruner,
        decoder=decoder,
        train_records=train_records,
        val_records=val_records,
        image_size=frozen.image_size,
        unit=unit,
        out_dir=job.out / "run",
        config=job.config,
        train_cache=caches[0],
        val_cache=caches[1],
        encoder=encoder,
        alpha=job.alpha,
        lam=job.lam,
        max_train_images=job.max_train_images,
        max_val_images=job.max_val_images,
        decoder_warmup_steps=job.decoder_warmup_steps,
        guard=CollapseGuard(job.min_kept_fraction, job.collapse_patience),
        dist=dist,
        progress=progress,
        resize=frozen.resize,
    )
    target = job.out / "pruner"
    if dist.is_main:
        pruner = pruner.to("cpu")
        pruner.save(target)
        report = {
            "steps": summary.steps,
            "epochs": summary.epochs,
            "seconds": round(summary.seconds, 1),
            "best_val": summary.best_val,
            "last_val": summary.val_history[-1] if summary.val_history else {},
            "keyframes": {"train": len(train_records), "val": len(val_records)},
            "decoder": decoder.config.to_dict(),
            "image_size": list(frozen.image_size),
            "resize": frozen.resize,
            "cameras": list(frozen.cameras),
        }
        (job.out / "summary.json").write_text(json.dumps(report, indent=1))
        if job.install:
            install_pruner(job.model, pruner)
    return target


def install_pruner(bundle: Path, pruner: torch.nn.Module) -> None:
    """Write `pruner` into a bundle (pruner/ and the pruner field of config.json)."""
    from fastdrive_ros.nn.vla import VLA

    vla = VLA.from_pretrained(bundle)
    vla.pruner = pruner
    vla.config.pruner = pruner.config.to_dict()
    vla.save_pretrained(bundle)
