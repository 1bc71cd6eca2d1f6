"""`fastdrive closed-loop`: the planner drives the synthetic world (issue 9; see eval/closed_loop).

Imports are lazy so that `fastdrive --help` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def closed_loop(
    out: Annotated[Path, typer.Option(help="Output folder: results.json/md, plots, GIFs.")],
    seed: Annotated[
        int, typer.Option(help="World seed (held out: the default model trained on 11/22/33).")
    ] = 44,
    routes: Annotated[int, typer.Option(help="Routes (scenes of the seed) to drive.")] = 4,
    seconds: Annotated[
        float, typer.Option(help="Driving time per route after the 2-s warm-up.")
    ] = 20.0,
    model: Annotated[
        str, typer.Option(help="Model folder; empty = the embedded default (models/default).")
    ] = "",
    pruners: Annotated[
        str,
        typer.Option(help="Comma-separated selectors, 'none' (unpruned) and 'no_images' (blind)."),
    ] = "reconpruner,random,none,no_images",
    ratios: Annotated[
        str, typer.Option(help="Comma-separated prune ratios in [0, 1).")
    ] = "0.5,0.75",
    rows: Annotated[
        str,
        typer.Option(
            help="Explicit rows instead of pruners x ratios, e.g. reconpruner:0.5,no_images."
        ),
    ] = "",
    plan_hz: Annotated[float, typer.Option(help="Re-planning rate (Hz).")] = 2.0,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime/--deterministic",
            help="Realtime: compute time delays actuation. Deterministic (default): time waits.",
        ),
    ] = False,
    gif: Annotated[
        bool, typer.Option("--gif/--no-gif", help="Write a GIF per route and row.")
    ] = True,
    backend: Annotated[
        str, typer.Option(help="Encoder+pruner backend (torch: deterministic).")
    ] = "torch",
    threads: Annotated[int, typer.Option(help="Torch CPU threads.")] = 1,
    town_grid: Annotated[
        int, typer.Option(help="Intersections per side of the town (small for smoke tests).")
    ] = 5,
    conflicts: Annotated[
        bool,
        typer.Option(
            help="Routes with standing vehicles and stop-and-go leads (synth --conflicts)."
        ),
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress.")
    ] = True,
) -> None:
    """Let the planner drive the synthetic world through the node's frame pipeline (issue 9)."""
    from rich.progress import Progress

    from fastdrive_ros.cli import fail, split_list
    from fastdrive_ros.data.synth.sim import DT
    from fastdrive_ros.eval.closed_loop.episode import RouteRun
    from fastdrive_ros.eval.closed_loop.gif import write_gif
    from fastdrive_ros.eval.closed_loop.report import write_results
    from fastdrive_ros.eval.closed_loop.runner import (
        LoopSettings,
        Row,
        make_rows,
        parse_rows,
        run_rows,
    )
    from fastdrive_ros.loop_pipeline import PipelinePlanner, validate_rows
    from fastdrive_ros.runtime.errors import ModelFileError, RuntimeSetupError

    try:
        if rows:
            row_list = parse_rows(split_list(rows))
        else:
            ratio_values = [float(r) for r in split_list(ratios)]
            row_list = make_rows(split_list(pruners), ratio_values)
        validate_rows(row_list)
        if not row_list:
            raise ValueError("no rows: give --pruners (and --ratios) or --rows")
        if not 2 <= town_grid <= 8:
            raise ValueError(f"--town-grid must be in [2, 8], got {town_grid}")
        if routes < 1 or not 1.0 <= seconds <= 600.0 or plan_hz <= 0 or threads < 1:
            raise ValueError(
                "need --routes >= 1, 1 <= --seconds <= 600, --plan-hz > 0, --threads >= 1"
            )
    except ValueError as exc:
        raise fail(exc) from exc
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    planners: dict[Row, PipelinePlanner] = {}

    def make_planner(row: Row) -> PipelinePlanner:
        planners.clear()  # one model in memory at a time
        planners[row] = PipelinePlanner(model=model, row=row, backend=backend)
        return planners[row]

    try:
        make_planner(row_list[0])  # a model that cannot load fails before any driving
    except (ModelFileError, RuntimeSetupError, ValueError, OSError) as exc:
        raise fail(exc) from exc
    first = planners[row_list[0]]

    def cached(row: Row) -> PipelinePlanner:
        return first if row == row_list[0] else make_planner(row)

    settings = LoopSettings(seed, routes, seconds, plan_hz, realtime, gif, town_grid, conflicts)
    total = routes * (len(row_list) + 1)
    start = time.perf_counter()
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("closed loop", total=total)

        def on_route(label: str, index: int) -> None:
            bar.update(task, advance=1, description=f"{label} route {index}")

        def on_run(row: Row, run: RouteRun) -> None:
            if gif:
                name = f"{row.label.replace('@', '_')}_route{run.score.route}.gif"
                write_gif(run, out / "gifs" / name, dt=DT)
            for rec in run.plans:
                rec.images = None

        try:
            expert, results = run_rows(
                settings, row_list, cached, on_route=on_route, on_run=on_run
            )
        except (ModelFileError, RuntimeSetupError) as exc:
            raise fail(exc) from exc
    meta = {
        "model": str(model or "models/default"),
        "backend": backend,
        "threads": threads,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    doc = write_results(out, settings, expert, results, meta)
    typer.echo((out / "results.md").read_text(encoding="utf-8").split("## Per route")[0])
    for target in doc["targets"]:
        typer.echo(f"[{target['status']}] {target['target']}: {target['detail']}")
    typer.echo(
        f"wrote {out / 'results.json'}, results.md, closed_loop.png" + (", gifs/" if gif else "")
    )


def register(app: typer.Typer) -> None:
    """Add `fastdrive closed-loop`."""
    app.command("closed-loop")(closed_loop)
