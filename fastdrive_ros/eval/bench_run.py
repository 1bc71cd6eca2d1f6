"""`run_bench`: token counts, analytic FLOPs and optional timings, printed and saved as JSON."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fastdrive_ros.eval.bench import BenchConfig, analytic, bench_setup, reduced

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Full-depth 3B timing on a CPU would need ~15 GB of float32 weights and minutes per prefill.
CPU_FULL_3B_MESSAGE = (
    "timing skipped: the full 3B model on a CPU needs ~15 GB and minutes per call; pass "
    "--layers N for a reduced-depth timing here, or run with --device cuda"
)


def run_bench(
    *,
    config: BenchConfig,
    device: str = "cpu",
    ratios: Sequence[float] = (0.0, 0.25, 0.5, 0.75),
    layers: int | None = None,
    timing: bool | None = None,
    dtype: str | None = None,
    repeats: int = 5,
    warmup: int = 1,
    decode_tokens: int = 16,
    text_tokens: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure, print a table and save JSON (to `out` when given); returns the JSON dict.

    timing None = time unless that is the full 3B model on a CPU (then say why not).
    """
    from fastdrive_ros.eval.bench_timing import time_stages
    from fastdrive_ros.eval.runner import checked_device, machine_description

    ratios = sorted({float(r) for r in ratios})
    if not ratios or any(not 0.0 <= r < 1.0 for r in ratios):
        raise ValueError(f"ratios must be in [0, 1), got {list(ratios)}")
    torch_device = checked_device(device)
    dtype_name = dtype or ("bfloat16" if torch_device.type == "cuda" else "float32")
    if dtype_name not in DTYPES:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype_name!r}")
    setup = bench_setup(config, text_tokens=text_tokens)
    report: dict[str, Any] = {
        "config": config,
        "image_size": list(setup.image_size),
        "cameras": setup.cameras,
        "prompt_style": setup.prompt_style,
        "text_tokens_note": "estimated from the project's prompt (Qwen2-style digit split)"
        if text_tokens is None
        else "given",
        "full_depth": analytic(setup, ratios),
        "device": str(torch_device),
        "dtype": dtype_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": machine_description(str(torch_device)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layers": layers,
    }
    if timing is None:
        timing = not (config == "3b" and torch_device.type == "cpu" and layers is None)
        if not timing:
            report["timing_skipped"] = CPU_FULL_3B_MESSAGE
    if timing:
        qwen = reduced(setup.qwen, layers)
        if layers is not None:
            report["timed_depth"] = {
                "vision_blocks": layers,
                "llm_layers": layers,
                "note": "timings are for the reduced depth; FLOPs of it under timed_analytic",
            }
            report["timed_analytic"] = analytic(setup, ratios, qwen)
        report["timings"] = time_stages(
            setup,
            qwen,
            ratios,
            device=torch_device,
            dtype=DTYPES[dtype_name],
            repeats=repeats,
            warmup=warmup,
            decode_tokens=decode_tokens,
            progress=progress,
        )
        report["timings"]["repeats"] = repeats
        report["timings"]["statistic"] = "median" + (
            " (CUDA events)" if torch_device.type == "cuda" else " (perf_counter)"
        )
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        report["saved_to"] = str(out)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The bench table as text (also what the CLI prints)."""
    full = report["full_depth"]
    timings = report.get("timings")
    lines = [
        f"fastdrive bench --config {report['config']}: {report['cameras']} x "
        f"{report['image_size'][0]}x{report['image_size'][1]} -> {full['total_tokens']} visual "
        f"tokens, {full['text_tokens']} text tokens ({report['text_tokens_note']})",
        f"device {report['device']} ({report['machine']}), {report['dtype']}, "
        f"{report['threads']} threads, torch {report['torch']}",
        f"encoder {full['encoder_tflops']:.4g} TFLOP, ReconPruner {full['pruner_tflops']:.4g} "
        "TFLOP (full depth)",
    ]
    if report.get("timed_depth"):
        lines.append(
            f"REDUCED DEPTH: timings use {report['layers']} vision blocks and {report['layers']} "
            "LLM layers (--layers); FLOPs columns are full depth"
        )
    if timings:
        lines.append(
            f"encoder {timings['encoder_ms']:.1f} ms (median of {timings['repeats']}, "
            f"{timings['statistic']})"
        )
    header = f"{'pruned':>7} {'kept':>6} {'prefill TFLOP':>14} {'decode GFLOP/tok':>17}"
    if timings:
        header += f" {'pruner ms':>10} {'prefill ms':>11} {'speed-up':>9} {'decode ms/tok':>14}"
    lines.append(header)
    base = timings["prefill_ms"].get("0.0") if timings else None  # speed-up against unpruned
    for row in full["ratios"]:
        key = str(row["prune_ratio"])
        line = (
            f"{100 * row['prune_ratio']:>6.0f}% {row['kept_tokens']:>6} "
            f"{row['prefill_tflops']:>14.4g} {row['decode_gflops_per_token']:>17.4g}"
        )
        if timings:
            prefill = timings["prefill_ms"][key]
            speedup = f"{base / prefill:>8.2f}x" if base else f"{'–':>9}"
            line += (
                f" {timings['pruner_ms'][key]:>10.2f} {prefill:>11.1f} {speedup}"
                f" {timings['decode_ms_per_token'][key]:>14.2f}"
            )
        lines.append(line)
    if report.get("timing_skipped"):
        lines.append(report["timing_skipped"])
    if report.get("saved_to"):
        lines.append(f"saved {report['saved_to']}")
    return "\n".join(lines)
