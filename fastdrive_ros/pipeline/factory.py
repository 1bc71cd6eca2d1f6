"""`build_pipeline(params)`: load the model folder, pick the backend, warm up, ready to plan.

Start-up problems (missing, corrupt or mismatched model files, a backend that cannot run) raise
`ModelFileError` / `RuntimeSetupError` naming the file and what to do, before any frame arrives;
the transports print that and exit instead of running a node that can never plan.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fastdrive_ros.core_types import EgoState, PlanResult
from fastdrive_ros.nn.frame_memory import FrameSlot
from fastdrive_ros.pipeline.clock import Clock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline, PipelineInfo, default_preprocess
from fastdrive_ros.runtime.errors import ModelFileError

LOG = logging.getLogger("fastdrive_ros.pipeline")
MODEL_DIR_ENV = "FASTDRIVE_MODEL_DIR"
DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class PipelineParams:
    """What build_pipeline needs: the model, how to run it, and the pipeline settings.

    Attributes:
        model_dir: a VLA bundle or Qwen2.5-VL checkpoint folder; "" = the embedded default.
        backend: "auto", "tensorrt", "onnxruntime" or "torch" (encoder + pruner).
        pruner: selector name (nn.registry.SELECTOR_NAMES).
        prune_ratio: fraction of visual tokens dropped; None = the model's default.
        device: "auto", "cpu", "cuda", "cuda:N".
        torch_threads: CPU threads for torch (0 = leave torch's default).
        warm_up: run the models once on black images before returning.
        probe_runs: timed runs when backend=auto compares ONNX Runtime CPU with torch.
        keep_images: keep each frame's decoded images in its output (for overlays).
    """

    model_dir: str | Path = ""
    backend: str = "auto"
    pruner: str = "reconpruner"
    prune_ratio: float | None = None
    device: str = "auto"
    torch_threads: int = 0
    config: PipelineConfig = field(default_factory=PipelineConfig)
    warm_up: bool = True
    probe_runs: int = 7
    keep_images: bool = False


def default_model_candidates() -> list[Path]:
    """Where the embedded default model may be: $FASTDRIVE_MODEL_DIR, the checkout, prefixes."""
    found = []
    if os.environ.get(MODEL_DIR_ENV):
        found.append(Path(os.environ[MODEL_DIR_ENV]))
    found.append(Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL)
    found.append(Path(sys.prefix) / "share" / "fastdrive_ros" / "models" / DEFAULT_MODEL)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            found.append(Path(prefix) / "share" / "fastdrive_ros" / "models" / DEFAULT_MODEL)
    return found


def resolve_model_dir(model_dir: str | Path) -> Path:
    """The folder to load: `model_dir`, or the first default candidate holding a config.json."""
    if str(model_dir):
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise ModelFileError(
                path,
                "model folder not found",
                "pass model_dir / --model with a folder made by `fastdrive build-default` or a "
                "local Qwen2.5-VL / Impromptu-VLA checkpoint folder",
            )
        return path
    candidates = default_model_candidates()
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    raise ModelFileError(
        candidates[0] if os.environ.get(MODEL_DIR_ENV) else candidates[-1],
        "no model_dir given and the embedded default model is not installed (looked in "
        + ", ".join(str(c) for c in candidates)
        + ")",
        "build it with `make models` (fastdrive build-default --out models/default) or pass "
        "model_dir / --model",
    )


def sensor_lever(vla: Any) -> float | None:
    """The lever arm (m) of the point a model plans: the LiDAR for real checkpoints, else None.

    Real Qwen2.5-VL / Impromptu-VLA checkpoints were trained on LiDAR-sensor trajectories
    (data/reference.py); our bundles on the rear axle, the odometry's own point.
    """
    from fastdrive_ros.pipeline.sensor_point import NOMINAL_LIDAR_LEVER_M

    kind = getattr(vla.config, "tokenizer", {}).get("kind")
    return NOMINAL_LIDAR_LEVER_M if kind == "checkpoint" else None


class VLAPlannerAdapter:
    """The pipeline's Planner over nn.vla's planner, with an LLM-stage selector when asked.

    For a model that plans a sensor point (sensor_lever), the odometry history goes in moved to
    that point and the waypoints come back moved to the rear axle (pipeline/sensor_point.py).
    """

    def __init__(self, *, vla: Any, llm_selector: Any = None, keep: int | None = None) -> None:
        self._planner = vla.planner
        self._selector = llm_selector
        self._keep = keep
        self.lever = sensor_lever(vla)

    @torch.inference_mode()
    def plan(
        self,
        *,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        ego: EgoState,
        max_new_tokens: int,
        memory: FrameSlot | None = None,
    ) -> PlanResult:
        from fastdrive_ros.pipeline.sensor_point import ego_for_sensor, plan_to_rear_axle

        if self.lever is not None:
            ego = ego_for_sensor(ego, self.lever)
        result = self._planner.plan(
            kept_tokens=kept_tokens,
            kept_index=kept_index,
            grid_thw=grid_thw,
            ego=ego,
            selector=self._selector,
            keep=self._keep,
            max_new_tokens=max_new_tokens,
            memory=memory,
        )
        return result if self.lever is None else plan_to_rear_axle(result, self.lever)


def build_pipeline(
    params: PipelineParams, *, clock: Clock | None = None, health_clock: Clock | None = None
) -> FramePipeline:
    """Load the model, start the backend (logging why it was chosen), warm up.

    `health_clock` measures staleness (default: `clock`); see FramePipeline.
    """
    from fastdrive_ros.nn.registry import make_selector, selector_stage
    from fastdrive_ros.nn.selection import keep_count
    from fastdrive_ros.runtime.backend_select import choose_backend
    from fastdrive_ros.runtime.model_source import load_vla
    from fastdrive_ros.runtime.torch_backend import resolve_device

    if params.torch_threads > 0:
        torch.set_num_threads(params.torch_threads)
    folder = resolve_model_dir(params.model_dir)
    device = resolve_device(params.device)
    vla = load_vla(folder, device=str(device))
    model_cameras = tuple(vla.config.camera_names)
    if tuple(params.config.camera_names) != model_cameras:
        raise ModelFileError(
            folder / "config.json",
            f"the model sees cameras {list(model_cameras)} but camera_names is "
            f"{list(params.config.camera_names)}",
            "set camera_names (and camera_topics) to the model's cameras, in its order",
        )
    ratio = vla.config.default_prune_ratio if params.prune_ratio is None else params.prune_ratio
    stage = selector_stage(params.pruner)
    llm_selector, llm_keep = None, None
    if stage == "llm":
        llm_selector = make_selector(params.pruner)
        n_tokens = vla.config.tokens_per_camera * len(model_cameras)
        llm_keep = keep_count(n_tokens, ratio)
    choice = choose_backend(
        params.backend,
        model=vla,
        model_folder=folder,
        selector=params.pruner if stage == "encoder" else "none",
        prune_ratio=ratio if stage == "encoder" else 0.0,
        device=str(device),
        probe_runs=params.probe_runs,
    )
    info = PipelineInfo(
        model_name=folder.resolve().name,
        pruner=params.pruner,
        prune_ratio=ratio,
        backend=choice.name,
        image_size=tuple(vla.config.image_size),
        llm_keep=llm_keep,
        extra={"backend_reason": choice.reason, "device": str(device)},
    )
    pipeline = FramePipeline(
        config=params.config,
        backend=choice.backend,
        planner=VLAPlannerAdapter(vla=vla, llm_selector=llm_selector, keep=llm_keep),
        clock=clock,
        image_size=tuple(vla.config.image_size),
        # bilinear: the fused default (and the reduced JPEG decode it allows); a checkpoint's
        # own resampling needs the full decoded image
        preprocess=None
        if vla.config.resize == "bilinear"
        else default_preprocess(tuple(vla.config.image_size), vla.config.resize),
        device=device,
        info=info,
        keep_images=params.keep_images,
        health_clock=health_clock,
    )
    LOG.info(
        "model %s: %d cameras at %dx%d, pruner %s, prune ratio %.2f (keep %.2f), backend %s",
        folder,
        len(model_cameras),
        info.image_size[1],
        info.image_size[0],
        params.pruner,
        ratio,
        1.0 - ratio,
        choice.name,
    )
    if params.warm_up:
        pipeline.warm_up()
    return pipeline


def build_tiny_model(folder: str | Path, *, cameras: int = 6, seed: int = 0) -> Path:
    """A tiny random VLA bundle (56x84 images) for tests and smoke runs; never for driving."""
    from fastdrive_ros.nn.configs import tiny_config
    from fastdrive_ros.nn.vla import VLA

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        VLA.build(tiny_config(cameras=cameras), seed=seed).save_pretrained(folder)
    return folder
