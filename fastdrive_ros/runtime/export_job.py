"""What `fastdrive export` does end to end: export, lint report, parity, optional benchmark.

Parity runs by default: ONNX Runtime (CPU) against the torch reference on random and rendered
road-scene input; the figures go into the sidecar JSON, and a failed parity marks the export so
that no runtime loads it (onnx_meta.read_export refuses it).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastdrive_ros.runtime.model_source import ModelParts
from fastdrive_ros.runtime.onnx_export import ExportResult, export_encoder_pruner, update_sidecar
from fastdrive_ros.runtime.onnx_meta import Precision
from fastdrive_ros.runtime.parity import ParityCase, parity_inputs, parity_table, run_parity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    """The export, its parity cases and (when asked) the benchmark."""

    export: ExportResult
    parity: tuple[ParityCase, ...]
    bench: Any | None

    @property
    def ok(self) -> bool:
        return all(case.ok for case in self.parity)


def _findings_table(result: ExportResult) -> object:
    from rich.table import Table

    table = Table(title=f"lint of {result.path.name} (TensorRT parser limits, opset <= 20)")
    for column in ("level", "check", "where", "finding"):
        table.add_column(column)
    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    for finding in result.findings:
        colour = colours[finding.level]
        table.add_row(
            f"[{colour}]{finding.level}[/{colour}]", finding.code, finding.where, finding.message
        )
    return table


def export_and_check(
    parts: ModelParts,
    out: Path,
    *,
    selector: str = "reconpruner",
    prune_ratio: float | None = None,
    precision: Precision = "fp32",
    opset: int = 20,
    parity: bool = True,
    bench_runs: int = 0,
    threads: int = 2,
    allow_legacy_fallback: bool = True,
    console: Any = None,
) -> ExportReport:
    """Export, print the lint findings, check parity and optionally benchmark (rich output)."""
    from rich.console import Console

    console = console or Console()
    exporter_chatter = io.StringIO()  # torch.onnx prints its progress to stdout
    with console.status("exporting encoder + pruner to ONNX (torch.export)"):
        with contextlib.redirect_stdout(exporter_chatter):
            result = export_encoder_pruner(
                parts,
                out,
                selector=selector,
                prune_ratio=prune_ratio,
                precision=precision,
                opset=opset,
                allow_legacy_fallback=allow_legacy_fallback,
            )
    meta = result.metadata
    plan = meta.plan
    size_mib = result.path.stat().st_size / 2**20
    console.print(
        f"[bold]{result.path}[/bold] ({size_mib:.1f} MiB, {result.seconds:.1f} s, "
        f"{meta.exporter}, opset {meta.opset}, {meta.precision})\n"
        f"  input pixels {list(meta.input_shape)} -> kept_tokens [{plan.keep}, {meta.token_dim}],"
        f" kept_index [{plan.keep}], scores [{plan.total}]\n"
        f"  selector {meta.selector}, prune ratio {plan.prune_ratio:g}: {plan.reason}"
    )
    console.print(_findings_table(result))
    cases: list[ParityCase] = []
    if parity:
        from fastdrive_ros.runtime.ort_backend import OrtBackend
        from fastdrive_ros.runtime.torch_backend import TorchBackend

        reference = TorchBackend(
            parts=parts, selector=parts.selector(selector), keep=plan.selector_keep, device="cpu"
        )
        with OrtBackend(onnx_path=result.path, providers=("cpu",), threads=threads) as ort:
            cases = run_parity(
                reference, ort, parity_inputs(parts.input_shape), plan, precision=precision
            )
        console.print(parity_table(cases))
        update_sidecar(
            result.sidecar,
            parity={"ok": all(c.ok for c in cases), "cases": [c.to_dict() for c in cases]},
        )
    bench = None
    if bench_runs > 0:
        from fastdrive_ros.runtime.bench import bench_backends, bench_table

        bench = bench_backends(parts, result.path, runs=bench_runs, threads=threads)
        console.print(bench_table(bench))
        update_sidecar(result.sidecar, bench=bench.to_dict())
    return ExportReport(result, tuple(cases), bench)
