"""`run_eval`: read the split, evaluate every method, write results.json/md, plots and overlays."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastdrive_ros.core_types import EGO_INPUTS, EgoInputs
from fastdrive_ros.data.types import KeyframeSample
from fastdrive_ros.eval.events import WorldRecords
from fastdrive_ros.eval.harness import (
    EgoPlanner,
    EncodedFrame,
    Evaluator,
    OverlaySpec,
    check_methods,
    encode_frame,
)
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


@dataclass(frozen=True)
class Setting:
    """One ego-input setting of an evaluation: what planners read and its camera-free MLP."""

    ego_inputs: EgoInputs
    ego_mlp: EgoPlanner | None = None
    ego_mlp_missing: str | None = None
    overlay: OverlaySpec | None = None


def encoding_order(scenes: Sequence[str], partners: Sequence[int] | None) -> list[int]:
    """The order to evaluate samples in so that each is encoded once, its partner's included.

    Scenes follow the pairing's cycle (each scene right before the one lending it tokens), from
    the first scene by name, keyframes in their own order (the frame memory needs it): the
    partner frames encoded for one scene are that next scene's own, so about two scenes'
    tokens are held at a time. Without partners: the given order.
    """
    members: dict[str, list[int]] = {}
    for i, scene in enumerate(scenes):
        members.setdefault(scene, []).append(i)
    if partners is None or not members:
        return list(range(len(scenes)))
    lender = {scenes[i]: scenes[partners[i]] for i in range(len(scenes))}
    names, ordered = sorted(members), []
    for first in names:  # one cycle for eval/pairing.py's pairings; robust to any other
        scene = first
        while scene not in ordered:
            ordered.append(scene)
            scene = lender[scene]
    return [i for scene in ordered for i in members[scene]]


class _FrameCache:
    """Encoded keyframes, each computed once and dropped after its last use in the order."""

    def __init__(self, model: EvalModel, samples: Sequence[KeyframeSample]) -> None:
        self._model, self._samples = model, samples
        self._frames: dict[int, EncodedFrame] = {}

    def get(self, index: int, sample: KeyframeSample | None = None) -> EncodedFrame:
        if index not in self._frames:
            self._frames[index] = encode_frame(self._model, sample or self._samples[index])
        return self._frames[index]

    def drop(self, indices: Sequence[int]) -> None:
        for index in indices:
            self._frames.pop(index, None)


def evaluate_settings(
    samples: Sequence[KeyframeSample],
    model: EvalModel,
    settings: Sequence[Setting],
    *,
    pruners: Sequence[str],
    ratios: Sequence[float],
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    world: WorldRecords | None = None,
    partners: Sequence[int] | None = None,
    scenes: Sequence[str] | None = None,
    bootstrap_draws: int = 2000,
) -> dict[str, EvalResults]:
    """Evaluate `model` on `samples` in every ego-input setting, each keyframe encoded once.

    The encoder output of a keyframe serves every setting and, as a partner, the shuffled probe
    of the scene paired with it. `partners[i]`: index into `samples` of the keyframe (another
    scene) that lends sample i its tokens; default: eval/pairing.py's scene pairing by `seed`.
    `scenes[i]`: sample i's scene name, where the caller knows it without reading the sample.
    Returns the results per setting (its `ego_inputs`), targets checked.
    """
    from tqdm.auto import tqdm

    if not settings or len({s.ego_inputs for s in settings}) != len(settings):
        raise ValueError(
            f"give each ego-input setting once, got {[s.ego_inputs for s in settings]}"
        )
    evaluators = [
        Evaluator(
            model=model,
            pruners=pruners,
            ratios=ratios,
            seed=seed,
            overlay=setting.overlay,
            ego_inputs=setting.ego_inputs,
            ego_mlp=setting.ego_mlp,
            ego_mlp_missing=setting.ego_mlp_missing,
            world=world,
            bootstrap_draws=bootstrap_draws,
        )
        for setting in settings
    ]
    if scenes is None:
        scenes = [s.scene_name for s in samples]
    needs_partner = evaluators[0].needs_partner
    if needs_partner and partners is None:
        partners = partner_indices(scenes, seed)
    lenders = partners if needs_partner else None
    order = encoding_order(scenes, lenders)
    last_use = {i: t for t, i in enumerate(order)}
    for t, i in enumerate(order):
        if lenders is not None:
            last_use[lenders[i]] = max(last_use[lenders[i]], t)
    frames = _FrameCache(model, samples)
    desc = f"eval ({sum(e.plans_per_sample for e in evaluators)} plans/sample)"
    for t, i in enumerate(tqdm(order, desc=desc, unit="sample", disable=not progress)):
        sample = samples[i]
        frame = frames.get(i, sample)
        partner = frames.get(lenders[i]) if lenders is not None else None
        for evaluator in evaluators:
            evaluator.add(sample, partner, frame=frame)
        used = (i,) if lenders is None else (i, lenders[i])
        frames.drop([j for j in used if last_use[j] <= t])
    out = {}
    for setting, evaluator in zip(settings, evaluators, strict=True):
        meta = dict(metadata or {})
        meta.setdefault("samples", evaluator.samples)
        results = evaluator.results(meta)
        results.targets = check_targets(results)
        out[setting.ego_inputs] = results
    return out


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
    """Evaluate `model` on `samples` (any sequence of KeyframeSample) in one ego-input setting."""
    setting = Setting(ego_inputs, ego_mlp, ego_mlp_missing, overlay)
    return evaluate_settings(
        samples,
        model,
        [setting],
        pruners=pruners,
        ratios=ratios,
        seed=seed,
        metadata=metadata,
        progress=progress,
        world=world,
        partners=partners,
        bootstrap_draws=bootstrap_draws,
    )[ego_inputs]


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


def run_eval(*, ego_inputs: EgoInputs = "full", **options: Any) -> EvalResults:
    """`run_eval_settings` in one ego-input setting, its outputs directly under `out`."""
    return run_eval_settings(ego_inputs=(ego_inputs,), **options)[ego_inputs]


def run_eval_settings(
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
    ego_inputs: Sequence[EgoInputs] = ("full",),
    mask_root: str | Path | None = None,
    bootstrap_draws: int = 2000,
) -> dict[str, EvalResults]:
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
    `ego_inputs` are the settings of what every planner (references included) reads of the
    ego state, each keyframe encoded once for all of them; the bundle's ego MLP of a setting is
    its `ego_mlp` reference (the results say so when the bundle has none). One setting writes
    its outputs under `out`, several under `out/<setting>`. Returns the results per setting.
    """
    from fastdrive_ros.data.reader import NuScenesReader

    pruners, ratios = check_methods(pruners, ratios)
    bad = [name for name in ego_inputs if name not in EGO_INPUTS]
    if bad or not ego_inputs or len(set(ego_inputs)) != len(ego_inputs):
        raise ValueError(
            f"--ego-inputs must be one or more of {', '.join(EGO_INPUTS)}, each once; got "
            f"{','.join(ego_inputs)!r}"
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
    outs = {name: Path(out) / (name if len(ego_inputs) > 1 else "") for name in ego_inputs}
    overlay_at = None
    if overlay_samples > 0 and any(r > 0 for r in ratios):
        overlay_at = max(ratios) if overlay_ratio is None else float(overlay_ratio)
        if overlay_at not in ratios or overlay_at == 0:
            raise ValueError(
                f"overlay ratio {overlay_at} must be one of the pruned ratios {ratios}"
            )
    settings, mlp_files = [], {}
    for name in ego_inputs:
        ego_mlp, ego_mlp_note = load_ego_mlp(model_folder, name)
        mlp_files[name] = ego_mlp_note if ego_mlp is not None else None
        overlay = (
            None
            if overlay_at is None
            else OverlaySpec(
                folder=outs[name] / OVERLAY_DIR,
                ratio=overlay_at,
                sample_indices=tuple(range(overlay_samples)),
            )
        )
        missing = None if ego_mlp is not None else ego_mlp_note
        settings.append(Setting(name, ego_mlp, missing, overlay))
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
        "world_event_records": len(world),
        "shuffled_pairing": "eval/pairing.py: scenes deranged by seed, same rank in the partner",
    }
    samples = _LazySamples(reader, indices)
    results = evaluate_settings(
        samples,
        model,
        settings,
        pruners=pruners,
        ratios=ratios,
        seed=seed,
        metadata=metadata,
        progress=progress,
        world=world,
        partners=partners,
        scenes=scenes,
        bootstrap_draws=bootstrap_draws,
    )
    for setting in settings:
        results[setting.ego_inputs].metadata["ego_mlp"] = mlp_files[setting.ego_inputs]
        write_outputs(results[setting.ego_inputs], outs[setting.ego_inputs])
    return results


class _LazySamples(Sequence):
    """Reads samples one at a time (a whole split of samples with maps would not fit in memory)."""

    def __init__(self, reader: Any, indices: list[int]) -> None:
        self._reader, self._indices = reader, indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> KeyframeSample:  # type: ignore[override]
        return self._reader[self._indices[i]]
