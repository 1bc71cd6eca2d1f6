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

    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.transport.node_main import (
        default_params_file,
        node_params,
        parse_overrides,
        setup_logging,
    )
    from fastdrive_ros.transport.node_params import ParamError
    from fastdrive_ros.transport.replay import replay_bag

    setup_logging(log_level)
    values = parse_overrides(overrides)
    shortcuts = {"model_dir": model, "backend": backend, "pruner": pruner}
    shortcuts["prune_ratio"] = prune_ratio
    values.update({k: v for k, v in shortcuts.items() if v is not None})
    try:
        node = node_params(params or default_params_file(), values)
    except ParamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--params/--set") from exc
    try:
        summary = replay_bag(
            bag,
            out=out,
            params=node,
            mode="realtime" if realtime else "every_frame",
            copy_inputs=copy_inputs,
            progress=progress,
        )
    except (FileNotFoundError, FileExistsError, RuntimeSetupError) as exc:
        typer.echo(f"replay: {exc}", err=True)
        raise typer.Exit(2) from exc
    Console().print(summary.table())
    typer.echo(f"wrote {out}: " + ", ".join(f"{t} x{n}" for t, n in summary.topics.items()))


def register(app: typer.Typer) -> None:
    """Add `fastdrive replay` to `app`."""
    app.command("replay")(replay)
