"""`fastdrive export` (encoder+pruner ONNX, lint, parity) and `fastdrive engine` (TensorRT).

Heavy imports happen inside the commands, so `fastdrive --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fastdrive_ros.cli import fail

PRECISIONS = ("fp32", "fp16")


def export(
    model: Annotated[
        Path,
        typer.Option(help="VLA bundle folder (e.g. models/default) or a Qwen2.5-VL checkpoint."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="ONNX file to write; default MODEL/onnx/encoder_pruner-<selector>-p<ratio>.onnx."
        ),
    ] = None,
    selector: Annotated[
        str, typer.Option(help="Encoder-stage selector in the graph: reconpruner or none.")
    ] = "reconpruner",
    prune_ratio: Annotated[
        float | None,
        typer.Option(
            help="Fraction of visual tokens dropped (K = floor(N(1-p))); default: the model's."
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, or fp16 weights and compute (for TensorRT 11 strongly typed FP16)."
        ),
    ] = "fp32",
    opset: Annotated[
        int,
        typer.Option(
            help="ONNX opset written (and recorded). torch's dynamo exporter writes 18..20; "
            "asking for another is an error, never a mislabelled file. TensorRT needs <= 20."
        ),
    ] = 20,
    parity: Annotated[
        bool, typer.Option(help="Check ONNX Runtime against torch (kept indices, token error).")
    ] = True,
    bench: Annotated[
        bool, typer.Option(help="Also time torch vs ONNX Runtime on this CPU.")
    ] = False,
    runs: Annotated[
        int, typer.Option(min=1, help="Timed runs per backend for --bench (>= 1).")
    ] = 10,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for parity and --bench.")] = 2,
    legacy_fallback: Annotated[
        bool,
        typer.Option(help="Fall back to the legacy TorchScript exporter if dynamo fails."),
    ] = True,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace an existing ONNX file (e.g. the one shipped in models/default).",
        ),
    ] = False,
) -> None:
    """Export the vision encoder + pruner + top-K as ONE ONNX graph, lint it, check parity."""
    import torch

    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.runtime.export_job import export_and_check
    from fastdrive_ros.runtime.model_source import load_model_parts
    from fastdrive_ros.runtime.onnx_meta import default_onnx_path

    if precision not in PRECISIONS:
        raise fail(ValueError(f"--precision must be one of {', '.join(PRECISIONS)}"))
    if not 1 <= opset <= 20:
        raise fail(ValueError("--opset must be in 1..20 (TensorRT parses opset <= 20)"))
    if out is not None and (out.is_dir() or str(out).endswith(("/", "\\"))):
        raise fail(f"--out {out} is a folder: give the ONNX file to write, e.g. {out}/model.onnx")
    torch.set_num_threads(threads)
    try:
        parts = load_model_parts(model)
        ratio = parts.default_prune_ratio if prune_ratio is None else prune_ratio
        target = out or default_onnx_path(model, selector, ratio, precision)  # type: ignore[arg-type]
        if Path(target).exists() and not force:
            # the shipped models/default/onnx file is what the node loads: never replace it
            # by accident (the backends would then run whatever this export produced)
            raise fail(f"{target} exists: pass --force to replace it, or --out to write elsewhere")
        report = export_and_check(
            parts,
            target,
            selector=selector,
            prune_ratio=ratio,
            precision=precision,  # type: ignore[arg-type]
            opset=opset,
            parity=parity,
            bench_runs=runs if bench else 0,
            threads=threads,
            allow_legacy_fallback=legacy_fallback,
        )
    except (RuntimeSetupError, ValueError) as exc:
        raise fail(exc) from exc
    if not report.ok:
        raise fail(
            RuntimeError(f"{target} failed its parity check; runtimes will refuse it"), code=1
        )


def engine(
    onnx: Annotated[
        Path | None, typer.Option(help="Exported encoder+pruner ONNX (from `fastdrive export`).")
    ] = None,
    precision: Annotated[
        str, typer.Option(help="Engine precision: fp16 (default on GPU) or fp32.")
    ] = "fp16",
    build_only: Annotated[
        bool,
        typer.Option(help="Build (or verify) the cached engine and exit: vehicle provisioning."),
    ] = False,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Engine cache folder; default $FASTDRIVE_ENGINE_CACHE or "
            "~/.cache/fastdrive_ros/engines."
        ),
    ] = None,
    workspace_mib: Annotated[int, typer.Option(help="TensorRT builder workspace in MiB.")] = 1024,
    device_id: Annotated[int, typer.Option(help="CUDA device to build for.")] = 0,
    runs: Annotated[
        int, typer.Option(help="Timed inferences after the build (ignored with --build-only).")
    ] = 20,
    list_cache: Annotated[
        bool, typer.Option("--list", help="List the engines in the cache and exit.")
    ] = False,
) -> None:
    """Build the TensorRT engine for an exported ONNX on this GPU, or list the engine cache."""
    from rich.console import Console

    from fastdrive_ros.runtime.engine_cache import EngineCache
    from fastdrive_ros.runtime.errors import RuntimeSetupError

    console = Console()
    engine_cache = EngineCache(root=cache)
    if list_cache:
        from fastdrive_ros.runtime.engine_report import cache_table

        console.print(cache_table(engine_cache))
        return
    if onnx is None:
        raise fail(ValueError("give --onnx FILE (or --list)"))
    if precision not in PRECISIONS:
        raise fail(ValueError(f"--precision must be one of {', '.join(PRECISIONS)}"))
    try:
        from fastdrive_ros.runtime.engine_report import build_and_time

        build_and_time(
            onnx,
            precision=precision,  # type: ignore[arg-type]
            cache=engine_cache,
            workspace_bytes=workspace_mib << 20,
            device_id=device_id,
            runs=0 if build_only else runs,
            console=console,
        )
    except (RuntimeSetupError, ValueError) as exc:
        raise fail(exc) from exc


def register(app: typer.Typer) -> None:
    """Add `export` and `engine` to `app`."""
    app.command(name="export")(export)
    app.command(name="engine")(engine)
