"""Latency of encoder+pruner: torch eager vs ONNX Runtime CPU (median of N runs, fixed threads).

    python -m fastdrive_ros.runtime.bench                    # compact default, random weights
    python -m fastdrive_ros.runtime.bench --model models/default --runs 20 --threads 2

Without --model it benchmarks the compact default's shapes (nn.configs.compact_config) with random
weights, so the figure exists before trained weights do; speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastdrive_ros.runtime.model_source import ModelParts


@dataclass(frozen=True)
class BenchResult:
    """Median and spread of each backend's latency in milliseconds, and the ratio."""

    input_shape: tuple[int, ...]
    tokens: int
    kept: int
    threads: int
    runs: int
    torch_ms: float
    torch_p90_ms: float
    ort_ms: float
    ort_p90_ms: float
    twin_ms: float
    twin_p90_ms: float

    @property
    def speedup(self) -> float:
        """Ratio torch median / ORT median (> 1: ONNX Runtime is faster)."""
        return self.torch_ms / self.ort_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup}


class _GraphRunner:
    """The exported graph's own torch module in eager mode (the fixed-window twin + top-K)."""

    def __init__(self, graph: torch.nn.Module) -> None:
        self._graph = graph

    def run(self, pixels: np.ndarray) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return self._graph(torch.from_numpy(pixels))


def _interleaved(backends: list[Any], pixels: np.ndarray, runs: int, warmup: int) -> list:
    """Per-backend latencies (ms), runs alternating between backends.

    Alternating makes a shared, busy CPU slow both backends alike, so the ratio stays fair.
    """
    for _ in range(warmup):
        for backend in backends:
            backend.run(pixels)
    times: list[list[float]] = [[] for _ in backends]
    for _ in range(runs):
        for backend, out in zip(backends, times):
            start = time.perf_counter()
            backend.run(pixels)
            out.append((time.perf_counter() - start) * 1e3)
    return times


def _p90(values: list[float]) -> float:
    return float(np.percentile(values, 90))


def bench_backends(
    parts: ModelParts,
    onnx_path: str | Path,
    *,
    runs: int = 10,
    threads: int = 2,
    warmup: int = 2,
    seed: int = 0,
) -> BenchResult:
    """Time three ways of running encoder + pruner on one frame, interleaved.

    TorchBackend (the stock tower + selector), the export graph's torch module (fixed-window
    twin) and OrtBackend (CPU provider) running that graph. The twin row separates what the
    graph's formulation gains from what ONNX Runtime gains.
    """
    from fastdrive_ros.runtime.onnx_export import build_graph
    from fastdrive_ros.runtime.onnx_meta import read_export
    from fastdrive_ros.runtime.ort_backend import OrtBackend
    from fastdrive_ros.runtime.torch_backend import TorchBackend

    if runs < 1 or threads < 1:
        raise ValueError("runs and threads must be >= 1")
    info = read_export(onnx_path)
    plan = info.metadata.plan
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pixels = np.random.default_rng(seed).standard_normal(parts.input_shape).astype(np.float32)
        reference = TorchBackend(
            parts=parts,
            selector=parts.selector(info.metadata.selector),
            keep=plan.selector_keep,
            device="cpu",
        )
        twin = _GraphRunner(
            build_graph(
                parts,
                selector=info.metadata.selector,
                prune_ratio=plan.prune_ratio,
                precision=info.metadata.precision,
            )
        )
        ort = OrtBackend(onnx_path=info.path, providers=("cpu",), threads=threads, info=info)
        torch_times, twin_times, ort_times = _interleaved(
            [reference, twin, ort], pixels, runs, warmup
        )
        ort.close()
    finally:
        torch.set_num_threads(previous)
    return BenchResult(
        input_shape=tuple(parts.input_shape),
        tokens=plan.total,
        kept=plan.keep,
        threads=threads,
        runs=runs,
        torch_ms=statistics.median(torch_times),
        torch_p90_ms=_p90(torch_times),
        ort_ms=statistics.median(ort_times),
        ort_p90_ms=_p90(ort_times),
        twin_ms=statistics.median(twin_times),
        twin_p90_ms=_p90(twin_times),
    )


def bench_table(result: BenchResult) -> object:
    """A rich Table of one BenchResult."""
    from rich.table import Table

    table = Table(
        title=(
            f"encoder+pruner latency, {list(result.input_shape)} -> keep {result.kept}/"
            f"{result.tokens} tokens, {result.threads} threads, median of {result.runs}"
        )
    )
    for column in ("backend", "median ms", "p90 ms", "vs torch"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    table.add_row(
        "torch (eager, stock tower)",
        f"{result.torch_ms:.1f}",
        f"{result.torch_p90_ms:.1f}",
        "1.00x",
    )
    table.add_row(
        "torch (eager, export graph)",
        f"{result.twin_ms:.1f}",
        f"{result.twin_p90_ms:.1f}",
        f"{result.torch_ms / result.twin_ms:.2f}x",
    )
    table.add_row(
        "onnxruntime (CPU, export graph)",
        f"{result.ort_ms:.1f}",
        f"{result.ort_p90_ms:.1f}",
        f"{result.speedup:.2f}x",
    )
    return table


def main(argv: list[str] | None = None) -> BenchResult:
    """Export (to a temporary folder unless --onnx is given), then benchmark and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="VLA bundle folder (default: compact config, random weights)"
    )
    parser.add_argument("--onnx", type=Path, help="an existing export of --model to time")
    parser.add_argument("--prune-ratio", type=float, default=None, help="fraction dropped")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per backend")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both backends")
    args = parser.parse_args(argv)

    from rich.console import Console

    from fastdrive_ros.runtime.model_source import load_model_parts, parts_from_config
    from fastdrive_ros.runtime.onnx_export import export_encoder_pruner

    console = Console()
    torch.set_num_threads(args.threads)
    if args.model is not None:
        parts = load_model_parts(args.model)
    else:
        from fastdrive_ros.nn.configs import compact_config

        parts = parts_from_config(compact_config())
        console.print("compact default config with random weights (no --model given)")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx
        if onnx_path is None:
            onnx_path = Path(tmp) / "encoder_pruner.onnx"
            with console.status("exporting encoder+pruner to ONNX"):
                export_encoder_pruner(parts, onnx_path, prune_ratio=args.prune_ratio)
        result = bench_backends(parts, onnx_path, runs=args.runs, threads=args.threads)
    console.print(bench_table(result))
    return result


if __name__ == "__main__":
    main()
