"""The `fastdrive` command: one entry point, one subcommand per job.

Each room contributes its subcommands through a small `*cli` module with `register(app)`; those
modules import nothing heavy at import time, so `fastdrive --help` stays fast. Conventions they
share: a bad option value is a `typer.BadParameter` (usage + message, exit 2); input that cannot be
used as given (a missing dataset, a bag that is not one, an existing output) is `raise fail(exc)`
(`error: <what is wrong and what to do>` on stderr, exit 2); long jobs take
`--progress/--no-progress`.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = (
    "fastdrive_ros.data.synth.cli",  # synth
    "fastdrive_ros.data.cli",  # masks, bag
    "fastdrive_ros.train.cli",  # train-pruner, train-planner, build-default
    "fastdrive_ros.train.ego_mlp_cli",  # train-ego-mlp
    "fastdrive_ros.eval.cli",  # eval, bench
    "fastdrive_ros.runtime.cli",  # export, engine
    "fastdrive_ros.transport.cli",  # drive, play
    "fastdrive_ros.transport.replay_cli",  # replay
    "fastdrive_ros.demo",  # demo
    "fastdrive_ros.default_model",  # build-default
    "fastdrive_ros.closed_loop",  # closed-loop
)


def split_list(values: str | list[str] | None) -> list[str]:
    """Option values that may be repeated and/or comma-separated, flattened and stripped."""
    items = [values] if isinstance(values, str) else values or []
    return [v.strip() for item in items for v in item.split(",") if v.strip()]


def parse_image_size(text: str, *, option: str = "--image-size") -> tuple[int, int]:
    """'640x360' -> (640, 360): WIDTH x HEIGHT, the one convention of every --image-size.

    Images are described as cameras and image tools do (1600x900 for nuScenes); code that needs
    (H, W), like VLAConfig.image_size, swaps after parsing. A bad value is a BadParameter.
    """
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise typer.BadParameter(
            f"expected WIDTHxHEIGHT such as 1600x900 or 504x280, got {text!r}", param_hint=option
        )
    width, height = int(parts[0]), int(parts[1])
    if width <= 0 or height <= 0:
        raise typer.BadParameter(f"image size must be positive, got {text!r}", param_hint=option)
    return width, height


def fail(error: Exception | str, *, code: int = 2) -> typer.Exit:
    """Print `error: <message>` in red on stderr and return the Exit to raise (bad input: 2)."""
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="fastdrive",
        help="FastDriveVLA on ROS 2: data, training, evaluation, export and the driving node.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )

    @app.command()
    def version() -> None:
        """Print the fastdrive_ros version."""
        from fastdrive_ros import __version__

        typer.echo(__version__)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(app)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
