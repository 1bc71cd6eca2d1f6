"""TensorRT backend: deserialize the cached engine and run it on a torch CUDA stream.

Uses the name-based tensor API of TensorRT 10/11 (`set_input_shape`, `set_tensor_address`,
`execute_async_v3`) with torch-allocated device buffers: no pycuda, and the outputs are torch
tensors already on the planner's GPU.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastdrive_ros.runtime.base import BackendName, EncoderPrunerOutput
from fastdrive_ros.runtime.engine_cache import EngineCache, Precision
from fastdrive_ros.runtime.errors import BackendUnavailable, ModelFileError
from fastdrive_ros.runtime.export_graph import INPUT_NAME, OUTPUT_NAMES
from fastdrive_ros.runtime.onnx_meta import ExportInfo, read_export
from fastdrive_ros.runtime.optional import import_tensorrt
from fastdrive_ros.runtime.torch_backend import check_pixels
from fastdrive_ros.runtime.trt_build import (
    REBUILD,
    EngineResult,
    check_trt_version,
    detect_device,
    ensure_engine,
)

log = logging.getLogger(__name__)


def torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    """TensorRT DataType -> torch dtype for the I/O tensors this graph has."""
    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
        trt.DataType.BOOL: torch.bool,
    }
    if dtype not in table:
        raise BackendUnavailable("tensorrt", f"engine I/O type {dtype} is not handled")
    return table[dtype]


class TensorRTBackend:
    """Encoder+pruner engine on one GPU.

    Args:
        onnx_path: the exported graph; the engine comes from the cache or is built from it.
        precision: "fp16" (default on GPU) or "fp32"; see trt_build.settings_for.
        cache_dir: engine cache folder (default engine_cache.default_cache_dir()).
        build: build the engine when the cache has none (False: fail with a ModelFileError).
        device_id: CUDA device.
        workspace_bytes: builder workspace limit.
        info: an already checked ExportInfo of onnx_path.
    """

    name: BackendName = "tensorrt"

    def __init__(
        self,
        *,
        onnx_path: str | Path,
        precision: Precision = "fp16",
        cache_dir: str | Path | None = None,
        build: bool = True,
        device_id: int = 0,
        workspace_bytes: int = 1 << 30,
        info: ExportInfo | None = None,
    ) -> None:
        trt = import_tensorrt()
        check_trt_version(trt)
        self._trt = trt
        device = detect_device(trt, device_id)
        self._info = info if info is not None else read_export(onnx_path)
        self._cache = EngineCache(root=cache_dir)
        self.engine_result: EngineResult = ensure_engine(
            trt,
            self._info.path,
            precision=precision,
            device=device,
            cache=self._cache,
            build=build,
            workspace_bytes=workspace_bytes,
            info=self._info,
        )
        self._device = torch.device("cuda", device_id)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine_path = self.engine_result.engine
        self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            raise ModelFileError(
                engine_path,
                f"TensorRT {trt.__version__} could not deserialize the engine (built for another "
                "TensorRT version or GPU, or corrupt)",
                REBUILD.format(onnx=self._info.path),
            )
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        expected = {INPUT_NAME, *OUTPUT_NAMES}
        if set(names) != expected:
            raise ModelFileError(
                engine_path,
                f"engine tensors {sorted(names)} are not {sorted(expected)}",
                REBUILD.format(onnx=self._info.path),
            )
        self._context = self._engine.create_execution_context()
        meta = self._info.metadata
        self._input_shape = meta.input_shape
        self._context.set_input_shape(INPUT_NAME, self._input_shape)
        self._outputs = {
            name: (
                tuple(self._context.get_tensor_shape(name)),
                torch_dtype(trt, self._engine.get_tensor_dtype(name)),
            )
            for name in OUTPUT_NAMES
        }
        self._grid = torch.tensor(meta.grid_thw, dtype=torch.long)
        self._has_scores = meta.selector != "none"
        self._stream = torch.cuda.Stream(device=self._device)
        self.last_inference_time_ms: float | None = None
        log.info(
            "TensorRT %s engine %s (%s)",
            trt.__version__,
            engine_path.name,
            self.engine_result.source,
        )

    @property
    def device(self) -> torch.device:
        return self._device

    def run(self, pixels: np.ndarray | torch.Tensor) -> EncoderPrunerOutput:
        """Map pixels [C, 3, H, W] float32 normalised -> kept tokens [K, D], their indices [K]."""
        check_pixels(pixels, self._input_shape)
        start = time.perf_counter()
        # The pixels were preprocessed on the caller's stream: the engine's stream must not
        # read them before that work is done.
        self._stream.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(self._stream):
            frame = torch.as_tensor(pixels, dtype=torch.float32)
            frame = frame.to(self._device, non_blocking=True).contiguous()
            outputs = {
                name: torch.empty(shape, dtype=dtype, device=self._device)
                for name, (shape, dtype) in self._outputs.items()
            }
            self._context.set_tensor_address(INPUT_NAME, frame.data_ptr())
            for name, tensor in outputs.items():
                self._context.set_tensor_address(name, tensor.data_ptr())
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        self._stream.synchronize()
        elapsed = (time.perf_counter() - start) * 1e3
        self.last_inference_time_ms = elapsed
        return EncoderPrunerOutput(
            kept_tokens=outputs["kept_tokens"].float(),
            kept_index=outputs["kept_index"].long(),
            grid_thw=self._grid.clone(),
            scores=outputs["scores"].float() if self._has_scores else None,
            timings_ms={"encode_prune": elapsed},
        )

    def close(self) -> None:
        """Release context, engine and runtime (in that order, as TensorRT requires)."""
        self._context = None
        self._engine = None
        self._runtime = None

    def __enter__(self) -> TensorRTBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
