"""One parameter, `backend: auto|tensorrt|onnxruntime|torch`, turned into a running backend.

`auto` tries, in order: TensorRT (importable and a CUDA GPU), ONNX Runtime with a GPU provider
(its TensorRT provider, then CUDA), torch on the GPU, ONNX Runtime on the CPU if a short probe
measures it faster than torch (FACTS.md: ORT CPU beat torch eager for a ViT), then torch. Every
candidate it passes over is recorded with the reason and logged. An explicit choice never falls
back: it either runs or raises with the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from fastdrive_ros.nn.selection import keep_count, per_camera_keep
from fastdrive_ros.runtime.backend_probe import (
    CACHE_FILE,
    DecisionCache,
    ProbeResult,
    alternating_medians,
    decision_key,
)
from fastdrive_ros.runtime.base import EncoderPrunerBackend
from fastdrive_ros.runtime.engine_cache import default_cache_dir
from fastdrive_ros.runtime.errors import BackendUnavailable, ModelFileError, RuntimeSetupError
from fastdrive_ros.runtime.keep_plan import EXPORTABLE_SELECTORS, KeepPlan, plan_keep
from fastdrive_ros.runtime.model_source import ModelParts, load_model_parts, parts_from_vla
from fastdrive_ros.runtime.onnx_meta import (
    ExportInfo,
    Precision,
    default_onnx_path,
    read_export,
)
from fastdrive_ros.runtime.torch_backend import TorchBackend, resolve_device

log = logging.getLogger(__name__)

Requested = Literal["auto", "tensorrt", "onnxruntime", "torch"]
REQUESTS: tuple[str, ...] = ("auto", "tensorrt", "onnxruntime", "torch")


@dataclass
class BackendChoice:
    """The backend that runs, why, and why each other candidate was passed over."""

    backend: EncoderPrunerBackend
    reason: str
    refusals: dict[str, str] = field(default_factory=dict)
    probe_ms: dict[str, float] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    """Candidates refused because a file exists but is wrong (corrupt, other weights): these
    are logged as warnings, a missing optional file or library only at INFO."""

    @property
    def name(self) -> str:
        return self.backend.name


def expected_export(
    info: ExportInfo, parts: ModelParts | None, selector: str, plan: KeepPlan
) -> None:
    """Raise ModelFileError when an ONNX was exported from other weights, sizes or budget."""
    meta = info.metadata
    folder = parts.folder if parts is not None and parts.folder is not None else Path("DIR")
    remedy = (
        f"re-export: `fastdrive export --model {folder} --selector {selector} "
        f"--prune-ratio {plan.prune_ratio:g} --out {info.path} --force`"
    )
    problems = []
    if meta.selector != selector:
        problems.append(f"it holds selector {meta.selector!r}, {selector!r} was asked")
    if meta.plan.keep != plan.keep or meta.plan.mode != plan.mode:
        problems.append(
            f"it keeps K={meta.plan.keep} ({meta.plan.mode}), the configuration asks "
            f"K={plan.keep} ({plan.mode}, prune ratio {plan.prune_ratio:g})"
        )
    if parts is not None:
        if tuple(meta.input_shape) != tuple(parts.input_shape):
            problems.append(
                f"its input is {list(meta.input_shape)}, the model takes {list(parts.input_shape)}"
            )
        if meta.model_hash != parts.model_hash():
            problems.append(
                f"it was exported from other weights (model hash {meta.model_hash[:12]}, this "
                f"model {parts.model_hash()[:12]})"
            )
    if problems:
        raise ModelFileError(info.path, "; ".join(problems), remedy)


def _resolve_parts(model: Any, model_folder: str | Path | None) -> ModelParts | None:
    if isinstance(model, ModelParts):
        return model
    if model is not None:
        return parts_from_vla(model, folder=model_folder)
    if model_folder is not None:
        return load_model_parts(model_folder, device="cpu")
    return None


def _keep_for(parts: ModelParts, selector: str, ratio: float) -> tuple[KeepPlan | None, Any]:
    """(export plan or None for non-exportable selectors, the torch selector's keep)."""
    if selector in EXPORTABLE_SELECTORS:
        plan = plan_keep(
            selector=selector,
            cameras=parts.cameras,
            tokens_per_camera=parts.tokens_per_camera,
            prune_ratio=ratio,
            budget=parts.budget,
        )
        return plan, plan.selector_keep
    counts = [parts.tokens_per_camera] * parts.cameras
    if parts.budget == "per_camera":
        return None, per_camera_keep(counts, ratio)
    return None, keep_count(sum(counts), ratio)


def _probe(
    ort_cpu: Any,
    reference: Any,
    parts: ModelParts,
    *,
    runs: int,
    cache_dir: str | Path | None,
    ort_threads: int | None,
) -> ProbeResult:
    """ORT CPU vs torch figures: cached for this machine and model, else measured and cached."""
    onnx_hash = getattr(getattr(ort_cpu, "info", None), "content_hash", "") or ""
    key = decision_key(
        model_hash=parts.model_hash(),
        onnx_hash=onnx_hash,
        input_shape=tuple(parts.input_shape),
        ort_threads=ort_threads,
    )
    cache = DecisionCache(Path(cache_dir or default_cache_dir().parent) / CACHE_FILE)
    cached = cache.get(key)
    if cached is not None and cached.runs >= runs:
        return cached
    pixels = np.random.default_rng(0).standard_normal(parts.input_shape).astype(np.float32)
    result = alternating_medians(ort_cpu, reference, pixels, runs)
    cache.put(key, result)
    return result


def choose_backend(
    requested: str = "auto",
    *,
    model_folder: str | Path | None = None,
    onnx_path: str | Path | None = None,
    model: Any = None,
    selector: str = "reconpruner",
    prune_ratio: float | None = None,
    device: str = "auto",
    precision: Precision | None = None,
    ort_threads: int | None = None,
    engine_cache_dir: str | Path | None = None,
    build_engine: bool = True,
    probe_runs: int = 7,
    ort_providers: Sequence[str] | None = None,
    probe_cache_dir: str | Path | None = None,
) -> BackendChoice:
    """Pick and start the encoder+pruner backend.

    Args:
        requested: "auto", "tensorrt", "onnxruntime" or "torch".
        model_folder: the VLA bundle (needed for torch, and to check an ONNX belongs to it).
        onnx_path: the exported graph (default: <model_folder>/onnx/<default name>).
        model: an already loaded VLA or ModelParts to share (the pipeline's planner model).
        selector: encoder-stage selector ("reconpruner", "none"; others run on torch only).
        prune_ratio: fraction of tokens dropped (default: the model's).
        device: "auto", "cpu" or "cuda[:i]"; "cpu" rules out the GPU candidates.
        precision: TensorRT engine precision (default fp16).
        ort_threads: ONNX Runtime intra-op threads on the CPU.
        engine_cache_dir: TensorRT engine cache (default engine_cache.default_cache_dir()).
        build_engine: build a missing TensorRT engine (False: fail instead).
        probe_runs: timed runs per backend when auto compares ORT CPU with torch, in
            alternation, medians compared (0: skip the probe and prefer ORT CPU, as FACTS.md
            measured). The decision is cached per machine and model (runtime/backend_probe.py).
        probe_cache_dir: folder of that cache (default: beside the engine cache).
        ort_providers: ONNX Runtime providers to use instead of the defaults (e.g.
            ("tensorrt", "cuda", "cpu")); every GPU one must be active or it is an error.
    """
    if requested not in REQUESTS:
        raise ValueError(f"backend must be one of {', '.join(REQUESTS)}, got {requested!r}")
    parts = _resolve_parts(model, model_folder)
    if parts is None and requested in ("auto", "torch"):
        raise ValueError(f"backend {requested!r} needs model_folder or model")
    if parts is None and onnx_path is None:
        raise ValueError("give model_folder (or model) or onnx_path")
    ratio = prune_ratio if prune_ratio is not None else (parts.default_prune_ratio if parts else 0)
    plan, torch_keep = _keep_for(parts, selector, ratio) if parts is not None else (None, None)
    gpu = device != "cpu" and torch.cuda.is_available()
    device_id = (torch.device(device).index or 0) if device.startswith("cuda") else 0
    refusals: dict[str, str] = {}
    broken: set[str] = set()

    def torch_backend() -> TorchBackend:
        assert parts is not None
        return TorchBackend(
            parts=parts,
            selector=parts.selector(selector),
            keep=torch_keep,
            device=resolve_device(device),
        )

    def export_info(onnx_precision: Precision) -> ExportInfo:
        if selector not in EXPORTABLE_SELECTORS:
            raise BackendUnavailable(
                "onnx", f"selector {selector!r} is not exported into the graph (torch only)"
            )
        path = onnx_path
        if path is None:
            if parts is None or parts.folder is None:
                raise BackendUnavailable(
                    "onnx", "no onnx_path given and the model was not loaded from a folder"
                )
            path = default_onnx_path(parts.folder, selector, ratio, onnx_precision)
            if onnx_precision == "fp16" and not Path(path).is_file():
                path = default_onnx_path(parts.folder, selector, ratio, "fp32")
        info = read_export(path)
        if plan is not None:
            expected_export(info, parts, selector, plan)
        return info

    def tensorrt() -> EncoderPrunerBackend:
        from fastdrive_ros.runtime.trt_backend import TensorRTBackend

        if not gpu:
            raise BackendUnavailable("tensorrt", "no CUDA GPU (or device=cpu)")
        engine_precision = precision or "fp16"
        info = export_info(engine_precision)
        return TensorRTBackend(
            onnx_path=info.path,
            precision=engine_precision,
            cache_dir=engine_cache_dir,
            build=build_engine,
            device_id=device_id,
            info=info,
        )

    def onnxruntime(providers: tuple[str, ...]) -> EncoderPrunerBackend:
        from fastdrive_ros.runtime.ort_backend import OrtBackend

        info = export_info("fp32")
        return OrtBackend(
            onnx_path=info.path,
            providers=providers,
            threads=ort_threads,
            device_id=device_id,
            trt_cache_dir=Path(engine_cache_dir or default_cache_dir()) / "ort-trt",
            info=info,
        )

    if requested == "torch":
        return BackendChoice(torch_backend(), "requested torch")
    if requested == "tensorrt":
        return BackendChoice(tensorrt(), "requested tensorrt")
    if requested == "onnxruntime":
        providers = tuple(ort_providers or (("cuda", "cpu") if gpu else ("cpu",)))
        return BackendChoice(onnxruntime(providers), f"requested onnxruntime ({providers[0]})")

    try:
        backend = tensorrt()
        return _chosen(
            BackendChoice(backend, "TensorRT engine on the GPU", refusals, broken=broken)
        )
    except RuntimeSetupError as exc:
        _refuse(refusals, broken, "tensorrt", exc)
    if gpu:
        for label, providers in _ort_gpu_candidates(ort_providers):
            try:
                backend = onnxruntime(providers)
                return _chosen(
                    BackendChoice(
                        backend, f"ONNX Runtime {label} provider", refusals, broken=broken
                    )
                )
            except RuntimeSetupError as exc:
                _refuse(refusals, broken, f"onnxruntime-{label}", exc)
    else:
        refusals["onnxruntime-gpu"] = "no CUDA GPU (or device=cpu)"
    reference = torch_backend()
    if reference.device.type == "cuda":
        refusals["onnxruntime-cpu"] = "torch runs on the GPU, faster than any CPU backend"
        return _chosen(BackendChoice(reference, "torch on the GPU", refusals, broken=broken))
    try:
        ort_cpu = onnxruntime(("cpu",))
    except RuntimeSetupError as exc:
        _refuse(refusals, broken, "onnxruntime-cpu", exc)
        return _chosen(
            BackendChoice(
                reference,
                "torch (the reference; the ONNX file is broken, see the warning)"
                if "onnxruntime-cpu" in broken
                else "torch (the reference; nothing faster runs)",
                refusals,
                broken=broken,
            )
        )
    if probe_runs <= 0:
        refusals["torch"] = "not probed; ONNX Runtime CPU preferred (FACTS.md: faster for a ViT)"
        return _chosen(
            BackendChoice(ort_cpu, "ONNX Runtime CPU (no probe)", refusals, broken=broken)
        )
    probe = _probe(
        ort_cpu,
        reference,
        parts,
        runs=probe_runs,
        cache_dir=probe_cache_dir,
        ort_threads=ort_threads,
    )
    figures = {"onnxruntime-cpu": probe.ort_ms, "torch": probe.torch_ms}
    if probe.winner == "onnxruntime-cpu":
        refusals["torch"] = f"slower on this CPU: {probe.describe()}"
        choice = BackendChoice(
            ort_cpu, f"ONNX Runtime CPU: {probe.describe()}", refusals, figures, broken=broken
        )
    else:
        ort_cpu.close()
        refusals["onnxruntime-cpu"] = f"slower on this CPU: {probe.describe()}"
        choice = BackendChoice(
            reference, f"torch: {probe.describe()}", refusals, figures, broken=broken
        )
    return _chosen(choice)


def _ort_gpu_candidates(
    override: Sequence[str] | None,
) -> list[tuple[str, tuple[str, ...]]]:
    """ONNX Runtime GPU provider lists to try in auto mode, best first."""
    if override:
        return [("gpu", tuple(override))]
    candidates = []
    try:
        from fastdrive_ros.runtime.optional import import_onnxruntime

        available = import_onnxruntime().get_available_providers()
    except RuntimeSetupError:
        available = []
    if "TensorrtExecutionProvider" in available:
        candidates.append(("tensorrt", ("tensorrt", "cuda", "cpu")))
    candidates.append(("cuda", ("cuda", "cpu")))
    return candidates


def _refuse(refusals: dict[str, str], broken: set[str], name: str, exc: Exception) -> None:
    """Record why candidate `name` was passed over; a file that exists but is wrong is broken."""
    refusals[name] = str(exc)
    if isinstance(exc, ModelFileError) and exc.path.exists():
        broken.add(name)


def _chosen(choice: BackendChoice) -> BackendChoice:
    log.info("encoder+pruner backend: %s (%s)", choice.name, choice.reason)
    for name, why in choice.refusals.items():
        if name in choice.broken:  # a corrupt or mismatched ONNX/engine is news, not routine
            log.warning("backend auto passed over %s because of a broken file: %s", name, why)
        else:
            log.info("  not %s: %s", name, why)
    return choice


def select_backend(requested: str = "auto", **kwargs: Any) -> EncoderPrunerBackend:
    """choose_backend(...).backend: the running backend, its choice logged (see choose_backend)."""
    return choose_backend(requested, **kwargs).backend
