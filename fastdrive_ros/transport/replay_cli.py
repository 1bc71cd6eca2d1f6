"""`fastdrive replay BAG --out OUTBAG`: the pipeline on a bag, in-process, outputs to MCAP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def replay(
    bag: Annotated[Path, typer.Argument(help="Input rosbag2 folder (MCAP or SQLite3).")],
    out: Annotated[
        Path, typer.Option("--out", help="Output rosbag2 folder (MCAP); must not exist.")
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="Model folder (default: the embedded model).")
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option("--pruner", help="Token selector: reconpruner, none, fastv, divprune..."),
    ] = None,
    prune_ratio: Annotated[
        float | None,
        typer.Option("--prune-ratio", help="Fraction of visual tokens DROPPED (keep = 1 - p)."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="auto, tensorrt, onnxruntime or torch.")
    ] = None,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime/--every-frame",
            help="realtime: frames arriving while the model is busy are dropped, as in the car "
            "(latency realism); every-frame: plan every synchronised frame (evaluation).",
        ),
    ] = True,
    params: Annotated[
        Path | None,
        typer.Option("--params", help="ros2 params YAML (default: config/drive.yaml)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any node parameter as key=value (repeatable)."),
    ] = None,
    copy_inputs: Annotated[
        bool,
        typer.Option("--copy-inputs", help="Also copy the input messages into the output bag."),
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING...")] = (
        "WARNING"
    ),
) -> None:
    """Run the driving pipeline on a bag without any network; write trajectories to MCAP."""
    from rich.console import Console

    from fastdrive_ros.cli import fail
    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.transport.node_main import params_from_cli, setup_logging
    from fastdrive_ros.transport.replay import BagError, check_bag, replay_bag
    from fastdrive_ros.transport.ros_types import typestore

    setup_logging(log_level)
    try:  # a damaged bag is one line and exit 2 before the model is loaded (seconds)
        check_bag(bag, typestore())
        if out.exists():
            raise FileExistsError(f"{out} exists: choose another --out or delete it")
    except (FileNotFoundError, FileExistsError, BagError) as exc:
        raise fail(exc) from exc
    shortcuts = dict(model_dir=model, backend=backend, pruner=pruner, prune_ratio=prune_ratio)
    node = params_from_cli(params, overrides, shortcuts)
    try:
        summary = replay_bag(
            bag,
            out=out,
            params=node,
            mode="realtime" if realtime else "every_frame",
            copy_inputs=copy_inputs,
            progress=progress,
        )
    except (FileNotFoundError, FileExistsError, RuntimeSetupError, BagError) as exc:
        raise fail(exc) from exc
    Console().print(summary.table())
    if summary.planned == 0:  # exit 0 (the replay ran), but nobody should miss this
        why = (
            "the bag holds no front camera image"
            if summary.frames == 0
            else f"all {summary.frames} frames were dropped"
        )
        typer.secho(
            f"warning: nothing was planned ({why}); last /diagnostics: {summary.health_last}",
            fg=typer.colors.YELLOW,
            err=True,
        )
    typer.echo(f"wrote {out}: " + ", ".join(f"{t} x{n}" for t, n in summary.topics.items()))


def register(app: typer.Typer) -> None:
    """Add `fastdrive replay` to `app`."""
    app.command("replay")(replay)
