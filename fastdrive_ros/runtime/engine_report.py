"""`fastdrive engine`'s work: build (or verify) an engine, time it, and list the cache."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from fastdrive_ros.runtime.engine_cache import EngineCache, Precision
from fastdrive_ros.runtime.hashing import file_sha256


def cache_table(cache: EngineCache) -> object:
    """A rich Table of every engine in the cache with its key fields and whether it is intact."""
    from rich.table import Table

    table = Table(title=f"TensorRT engine cache {cache.root}")
    table.add_column("engine (onnx-precision-gpu-trt-key)", overflow="fold")
    for column in ("typing", "TensorRT", "GPU", "MiB", "built", "state"):
        table.add_column(column)
    entries = cache.entries()
    for entry in entries:
        meta = entry.manifest
        if "error" in meta:
            table.add_row(entry.engine.name, "", "", "", "", "", meta["error"])
            continue
        settings = meta.get("settings", {})
        if not entry.present:
            state = "[red]engine missing[/red]"
        elif meta.get("engine_sha256") != file_sha256(entry.engine):
            state = "[red]corrupt[/red]"
        else:
            state = "[green]ok[/green]"
        table.add_row(
            entry.engine.name,
            "strong" if settings.get("strongly_typed") else "weak",
            str(meta.get("trt_version", "")),
            str(meta.get("gpu_name", "")) or f"sm {meta.get('compute_capability', '')}",
            f"{int(meta.get('engine_bytes', 0)) / 2**20:.1f}",
            str(meta.get("created", ""))[:10],
            state,
        )
    if not entries:
        table.caption = "empty: build one with `fastdrive engine --onnx FILE --build-only`"
    return table


def build_and_time(
    onnx: Path,
    *,
    precision: Precision,
    cache: EngineCache,
    workspace_bytes: int,
    device_id: int,
    runs: int,
    console: Any,
) -> None:
    """Ensure the engine is cached (building it if needed); then time `runs` inferences."""
    from fastdrive_ros.runtime.onnx_meta import read_export
    from fastdrive_ros.runtime.optional import import_tensorrt
    from fastdrive_ros.runtime.trt_build import check_trt_version, detect_device, ensure_engine

    trt = import_tensorrt()
    check_trt_version(trt)
    device = detect_device(trt, device_id)
    info = read_export(onnx)
    with console.status(
        f"TensorRT {trt.__version__}: engine for {onnx.name} on {device.gpu_name}"
    ):
        result = ensure_engine(
            trt,
            info.path,
            precision=precision,
            device=device,
            cache=cache,
            build=True,
            workspace_bytes=workspace_bytes,
            info=info,
        )
    console.print(
        f"{result.source}: {result.engine} ({result.engine.stat().st_size / 2**20:.1f} MiB, "
        f"{result.seconds:.1f} s) key {result.key.digest[:16]}"
    )
    if runs <= 0:
        return
    import numpy as np

    from fastdrive_ros.runtime.trt_backend import TensorRTBackend

    pixels = np.random.default_rng(0).standard_normal(info.metadata.input_shape)
    with TensorRTBackend(
        onnx_path=info.path,
        precision=precision,
        cache_dir=cache.root,
        build=False,
        device_id=device_id,
        info=info,
    ) as backend:
        backend.run(pixels)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            backend.run(pixels)
            times.append((time.perf_counter() - start) * 1e3)
    console.print(f"TensorRT encoder+pruner: median {statistics.median(times):.2f} ms over {runs}")
