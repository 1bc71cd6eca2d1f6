"""`run_eval`: read the split, evaluate every method, write results.json/md, plots and overlays."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastdrive_ros.core_types import EGO_INPUTS, EgoInputs
from fastdrive_ros.data.types import KeyframeSample
from fastdrive_ros.eval.events import WorldRecords
from fastdrive_ros.eval.harness import EgoPlanner, Evaluator, OverlaySpec, check_methods
from fastdrive_ros.eval.model_api import EvalModel
from fastdrive_ros.eval.pairing import partner_indices
from fastdrive_ros.eval.plots import plot_events, plot_latency, plot_quality
from fastdrive_ros.eval.records import EvalResults
from fastdrive_ros.eval.report_md import write_markdown
from fastdrive_ros.eval.targets import check_targets

OVERLAY_DIR = "overlays"


def spread_indices(total: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over range(total) (every scene, not the first few)."""
    if limit is None or limit >= total:
        return list(range(total))
    if limit <= 0:
        raise ValueError(f"max_samples must be positive, got {limit}")
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, limit)})


def checked_device(name: str) -> torch.device:
    """torch.device(name) for cpu or cuda, refusing CUDA where torch sees no GPU."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device must be cpu or cuda, got {name!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU here")
    return device


def machine_description(device: str) -> str:
    """CPU (and GPU) of this host in words, for the metadata."""
    cpu = platform.processor() or platform.machine()
    text = f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def load_ego_mlp(model_folder: str | Path, inputs: EgoInputs) -> tuple[EgoPlanner | None, str]:
    """(the bundle's ego MLP for `inputs` or None, a sentence saying which file or why none)."""
    from fastdrive_ros.nn.ego_mlp import EgoMLP, ego_mlp_path

    path = ego_mlp_path(model_folder, inputs)
    if not path.is_file():
        return None, (
            f"the model bundle has no ego MLP for ego inputs {inputs!r} ({path} is missing): "
            "train one with `fastdrive train-ego-mlp` on the planner's training keyframes"
        )
    return EgoMLP.load(path, inputs=inputs), str(path)


def evaluate(
    samples: Sequence[KeyframeSample],
    model: EvalModel,
    *,
    pruners: Sequence[str],
    ratios: Sequence[float],
    seed: int = 0,
    overlay: OverlaySpec | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    ego_inputs: EgoInputs = "full",
    ego_mlp: EgoPlanner | None = None,
    ego_mlp_missing: str | None = None,
    world: WorldRecords | None = None,
    partners: Sequence[int] | None = None,
    bootstrap_draws: int = 2000,
) -> EvalResults:
    """Evaluate `model` on `samples` (any sequence of KeyframeSample) and check the targets.

    `partners[i]`: index into `samples` of the keyframe (another scene) that lends sample i its
    tokens for the shuffled probe; default: eval/pairing.py's scene pairing by `seed`.
    """
    from tqdm.auto import tqdm

    evaluator = Evaluator(
        model=model,
        pruners=pruners,
        ratios=ratios,
        seed=seed,
        overlay=overlay,
        ego_inputs=ego_inputs,
        ego_mlp=ego_mlp,
        ego_mlp_missing=ego_mlp_missing,
        world=world,
        bootstrap_draws=bootstrap_draws,
    )
    if evaluator.needs_partner and partners is None:
        partners = partner_indices([s.scene_name for s in samples], seed)
    desc = f"eval ({evaluator.plans_per_sample} plans/sample)"
    for i, sample in enumerate(tqdm(samples, desc=desc, unit="sample", disable=not progress)):
        partner = samples[partners[i]] if evaluator.needs_partner and partners else None
        evaluator.add(sample, partner)
    meta = dict(metadata or {})
    meta.setdefault("samples", evaluator.samples)
    results = evaluator.results(meta)
    results.targets = check_targets(results)
    return results


def write_outputs(results: EvalResults, out: str | Path) -> dict[str, Path]:
    """results.json, results.md, quality_vs_keep.png, latency_vs_keep.png under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "json": results.save(out / "results.json"),
        "markdown": write_markdown(results, out / "results.md"),
        "quality_plot": plot_quality(results, out / "quality_vs_keep.png"),
        "latency_plot": plot_latency(results, out / "latency_vs_keep.png"),
        "events_plot": plot_events(results, out / "l2_by_event.png"),
    }


def run_eval(
    *,
    dataroot: str | Path,
    version: str,
    model_folder: str | Path,
    pruners: Sequence[str],
    ratios: Sequence[float],
    out: str | Path,
    split: str = "val",
    max_samples: int | None = None,
    max_scenes: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    overlay_ratio: float | None = None,
    overlay_samples: int = 1,
    with_map: bool = True,
    progress: bool = True,
    model: EvalModel | None = None,
    resolution: str | None = None,
    reference: str = "auto",
    ego_inputs: EgoInputs = "full",
    mask_root: str | Path | None = None,
    bootstrap_draws: int = 2000,
) -> EvalResults:
    """Open-loop evaluation of a model folder on a nuScenes (or synthetic) split.

    `max_scenes` keeps the split's first scenes (by name) whole (each keyframe after its
    predecessor, as a planner with frame memory needs), `max_samples` that many samples spread
    evenly over what is kept; overlays are drawn for the first `overlay_samples` of them at
    `overlay_ratio` (default: the largest ratio). Without the map expansion (`with_map=False`)
    intersection and off-road are reported as missing. `model` overrides loading
    `model_folder` (tests, or an already loaded model). `resolution` is a
    real checkpoint's input setting (None: its own; "paper": 1596x1596, nn/resize.py).
    `reference` is the trajectories' reference point: "auto" = the model's own (LiDAR for real
    checkpoints, rear axle for our bundles), or "rear_axle" / "lidar" (data/reference.py).
    `ego_inputs` restricts what every planner (references included) reads of the ego state;
    the bundle's ego MLP of that setting is the `ego_mlp` reference (the results say so when
    the bundle has none).
    """
    from fastdrive_ros.data.reader import NuScenesReader

    pruners, ratios = check_methods(pruners, ratios)
    if ego_inputs not in EGO_INPUTS:
        raise ValueError(
            f"--ego-inputs must be one of {', '.join(EGO_INPUTS)}, got {ego_inputs!r}"
        )
    checked_device(device)  # before minutes of reading and loading
    torch.manual_seed(seed)
    reader = NuScenesReader(
        dataroot=dataroot, version=version, split=split, with_map=with_map, mask_root=mask_root
    )
    if len(reader) == 0:
        raise ValueError(
            f"split {split!r} of {dataroot} ({version}) has no keyframe with a 3 s future: "
            "use a larger dataset or --split all"
        )
    if max_scenes is not None and max_scenes < 1:
        raise ValueError(f"--max-scenes must be >= 1, got {max_scenes}")
    names = reader.scenes()
    scene_of = [name for name in names for _ in reader.sample_tokens(name)]
    kept_scenes = set(names[:max_scenes])
    candidates = [i for i, name in enumerate(scene_of) if name in kept_scenes]
    indices = [candidates[j] for j in spread_indices(len(candidates), max_samples)]
    scenes = [scene_of[i] for i in indices]
    partners = partner_indices(scenes, seed) if "shuffled" in pruners else None
    ego_mlp, ego_mlp_note = load_ego_mlp(model_folder, ego_inputs)
    world = WorldRecords.load(dataroot)
    if model is None:
        from fastdrive_ros.eval.vla_adapter import VLAEvalModel

        model = VLAEvalModel.from_folder(
            model_folder,
            device=device,
            attention="vispruner" in pruners,
            resolution=resolution,
        )
    if reference == "auto":
        reference = getattr(model, "reference_point", "rear_axle")
    reader.set_reference(reference)  # ValueError naming the choices for a bad one
    out = Path(out)
    overlay = None
    if overlay_samples > 0 and any(r > 0 for r in ratios):
        ratio = max(ratios) if overlay_ratio is None else float(overlay_ratio)
        if ratio not in ratios or ratio == 0:
            raise ValueError(f"overlay ratio {ratio} must be one of the pruned ratios {ratios}")
        overlay = OverlaySpec(
            folder=out / OVERLAY_DIR, ratio=ratio, sample_indices=tuple(range(overlay_samples))
        )
    metadata = {
        "model": str(model_folder),
        "model_name": model.name,
        "dataroot": str(dataroot),
        "version": version,
        "split": split,
        "max_scenes": max_scenes,
        "scenes": len(set(scenes)),
        "with_map": with_map,
        "pruners": pruners,
        "ratios": ratios,
        "seed": seed,
        "device": device,
        "command": " ".join(sys.argv) if sys.argv else "",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "reference": reference,
        "image_size": list(model.image_size),
        "resize": getattr(model, "resize", None),
        "cameras": list(model.camera_names),
        "timing_statistic": "median over samples",
        "encoder_attention_capture": bool(getattr(model, "attention", False)),
        "failure_policy": "failed plans are scored with the constant-velocity plan and counted",
        "ego_mlp": ego_mlp_note if ego_mlp is not None else None,
        "world_event_records": len(world),
        "shuffled_pairing": "eval/pairing.py: scenes deranged by seed, same rank in the partner",
    }
    samples = _LazySamples(reader, indices)
    results = evaluate(
        samples,
        model,
        pruners=pruners,
        ratios=ratios,
        seed=seed,
        overlay=overlay,
        metadata=metadata,
        progress=progress,
        ego_inputs=ego_inputs,
        ego_mlp=ego_mlp,
        ego_mlp_missing=None if ego_mlp is not None else ego_mlp_note,
        world=world,
        partners=partners,
        bootstrap_draws=bootstrap_draws,
    )
    write_outputs(results, out)
    return results


class _LazySamples(Sequence):
    """Reads samples one at a time (a whole split of samples with maps would not fit in memory)."""

    def __init__(self, reader: Any, indices: list[int]) -> None:
        self._reader, self._indices = reader, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> KeyframeSample:  # type: ignore[override]
        return self._reader[self._indices[i]]
