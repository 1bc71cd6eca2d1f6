"""ONNX Runtime backend for the exported encoder+pruner graph (TensorRT, CUDA or CPU provider).

onnxruntime-gpu lists the CUDA and TensorRT providers even where no GPU or CUDA library is usable
and then quietly runs everything on the CPU (FACTS.md). This backend compares the providers the
session really got with the ones asked for and raises BackendUnavailable on any fall-back, so a
car never runs a 20x slower CPU graph while believing it is on the GPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastdrive_ros.runtime.base import BackendName, EncoderPrunerOutput
from fastdrive_ros.runtime.errors import BackendUnavailable, ModelFileError
from fastdrive_ros.runtime.export_graph import INPUT_NAME, OUTPUT_NAMES
from fastdrive_ros.runtime.onnx_meta import REEXPORT, ExportInfo, read_export
from fastdrive_ros.runtime.optional import import_onnxruntime
from fastdrive_ros.runtime.torch_backend import check_pixels

log = logging.getLogger(__name__)

PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def provider_name(name: str) -> str:
    """'cuda' -> 'CUDAExecutionProvider'; full provider names pass through."""
    return PROVIDER_ALIASES.get(name.lower(), name)


def _fallback_cause(provider: str) -> str:
    if provider == "TensorrtExecutionProvider":
        return (
            "the TensorRT libraries (libnvinfer) onnxruntime-gpu was built for are missing or "
            "of another major version, or no NVIDIA GPU/driver is visible"
        )
    return (
        "no NVIDIA GPU/driver is visible to this process, or the CUDA/cuDNN libraries do not "
        "match this onnxruntime-gpu build (onnxruntime's log above names the library it could "
        "not load)"
    )


class OrtBackend:
    """Runs an exported encoder+pruner ONNX with ONNX Runtime.

    Args:
        onnx_path: the graph written by `fastdrive export`.
        providers: in priority order, aliases ("tensorrt", "cuda", "cpu") or full names. Every
            GPU provider asked for must be active after session creation, else BackendUnavailable.
        threads: intra-op threads (CPU provider); None lets onnxruntime decide.
        device_id: CUDA device for the GPU providers.
        trt_cache_dir: engine/timing cache folder of the TensorRT provider.
        info: an already checked ExportInfo of onnx_path (read_export) to skip re-reading it.
    """

    name: BackendName = "onnxruntime"

    def __init__(
        self,
        *,
        onnx_path: str | Path,
        providers: Sequence[str] = ("cpu",),
        threads: int | None = None,
        device_id: int = 0,
        trt_cache_dir: str | Path | None = None,
        info: ExportInfo | None = None,
    ) -> None:
        if not providers:
            raise ValueError("providers must name at least one execution provider")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        ort = import_onnxruntime()
        self._info = info if info is not None else read_export(onnx_path)
        self._path = self._info.path
        requested = [provider_name(p) for p in providers]
        available = ort.get_available_providers()
        for provider in requested:
            if provider not in available:
                hint = (
                    "install fastdrive_ros[ort-gpu] (onnxruntime-gpu) instead of [ort], or run "
                    "ONNX Runtime on the CPU (device=cpu)"
                    if provider in GPU_PROVIDERS
                    else "check the provider name"
                )
                raise BackendUnavailable(
                    "onnxruntime",
                    f"{provider} is not in this onnxruntime {ort.__version__} build "
                    f"(it has {', '.join(available)}): {hint}",
                )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # Idle intra-op threads must sleep, not spin: the torch planner runs on the same cores
        # right after each frame, and spinning workers burnt ~50 ms of its CPU per frame (2-core
        # CPU, compact model); ONNX Runtime's own latency did not suffer from it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_list: list[Any] = []
        for provider in requested:
            if provider == "TensorrtExecutionProvider":
                trt_options: dict[str, Any] = {"device_id": device_id}
                if trt_cache_dir is not None:
                    Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                    trt_options.update(
                        trt_engine_cache_enable=True,
                        trt_engine_cache_path=str(trt_cache_dir),
                        trt_timing_cache_enable=True,
                    )
                provider_list.append((provider, trt_options))
            elif provider == "CUDAExecutionProvider":
                provider_list.append((provider, {"device_id": device_id}))
            else:
                provider_list.append(provider)
        try:
            self._session = ort.InferenceSession(
                str(self._path), sess_options=options, providers=provider_list
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelFileError(
                self._path,
                f"onnxruntime cannot load it ({str(exc).strip()[:300]})",
                REEXPORT.format(path=self._path),
            ) from exc
        active = list(self._session.get_providers())
        for provider in requested:
            if provider not in active:
                raise BackendUnavailable(
                    "onnxruntime",
                    f"{provider} was requested but the session fell back to "
                    f"{', '.join(active)}: {_fallback_cause(provider)}",
                )
        self.providers: tuple[str, ...] = tuple(active)
        self._on_gpu = any(p in GPU_PROVIDERS for p in requested)
        self._device = torch.device("cuda", device_id) if self._on_gpu else torch.device("cpu")
        self._device_id = device_id
        meta = self._info.metadata
        self._input_shape = meta.input_shape
        self._grid = torch.tensor(meta.grid_thw, dtype=torch.long)
        self._out_shapes = {
            "kept_tokens": (meta.plan.keep, meta.token_dim),
            "kept_index": (meta.plan.keep,),
            "scores": (meta.plan.total,),
        }
        self._has_scores = meta.selector != "none"
        self.last_inference_time_ms: float | None = None
        log.info("onnxruntime session on %s for %s", ", ".join(active), self._path.name)

    @property
    def info(self) -> ExportInfo:
        return self._info

    @property
    def device(self) -> torch.device:
        """Where outputs live: cuda for the GPU providers (IO binding), else cpu."""
        return self._device

    def run(self, pixels: np.ndarray | torch.Tensor) -> EncoderPrunerOutput:
        """Map pixels [C, 3, H, W] float32 normalised -> kept tokens [K, D], their indices [K]."""
        check_pixels(pixels, self._input_shape)
        start = time.perf_counter()
        if self._on_gpu:
            kept, index, scores = self._run_bound(pixels)
        else:
            kept, index, scores = self._run_host(pixels)
        elapsed = (time.perf_counter() - start) * 1e3
        self.last_inference_time_ms = elapsed
        return EncoderPrunerOutput(
            kept_tokens=kept,
            kept_index=index,
            grid_thw=self._grid.clone(),
            scores=scores if self._has_scores else None,
            timings_ms={"encode_prune": elapsed},
        )

    def _run_host(self, pixels: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if isinstance(pixels, torch.Tensor):
            pixels = pixels.detach().to("cpu", torch.float32).numpy()
        feed = np.ascontiguousarray(pixels, dtype=np.float32)
        kept, index, scores = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: feed})
        return (
            torch.from_numpy(kept),
            torch.from_numpy(index).to(torch.long),
            torch.from_numpy(scores),
        )

    def _run_bound(self, pixels: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """IO binding: input and outputs stay in torch CUDA memory (no host round trip)."""
        frame = torch.as_tensor(pixels, dtype=torch.float32).to(self._device).contiguous()
        outputs = {
            "kept_tokens": torch.empty(self._out_shapes["kept_tokens"], device=self._device),
            "kept_index": torch.empty(
                self._out_shapes["kept_index"], dtype=torch.long, device=self._device
            ),
            "scores": torch.empty(self._out_shapes["scores"], device=self._device),
        }
        binding = self._session.io_binding()
        binding.bind_input(
            INPUT_NAME, "cuda", self._device_id, np.float32, list(frame.shape), frame.data_ptr()
        )
        for name, tensor in outputs.items():
            dtype = np.int64 if tensor.dtype == torch.long else np.float32
            binding.bind_output(
                name, "cuda", self._device_id, dtype, list(tensor.shape), tensor.data_ptr()
            )
        torch.cuda.synchronize(self._device)  # the input copy ran on torch's stream
        self._session.run_with_iobinding(binding)
        return outputs["kept_tokens"], outputs["kept_index"], outputs["scores"]

    def close(self) -> None:
        """Drop the session (frees its memory arena)."""
        self._session = None  # type: ignore[assignment]

    def __enter__(self) -> OrtBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
