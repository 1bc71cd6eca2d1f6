"""`fastdrive synth`: write the synthetic world as a nuScenes-format dataset (v1.0-synth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), e.g. '1600x900' (fastdrive_ros.cli.parse_image_size)."""
    from fastdrive_ros.cli import parse_image_size

    return parse_image_size(text)


def register(app: typer.Typer) -> None:
    """Add this room's subcommands to `app`."""

    @app.command()
    def synth(
        out: Annotated[Path, typer.Option(help="Dataset root to create (the devkit dataroot).")],
        scenes: Annotated[int, typer.Option(help="Number of scenes.")] = 10,
        seconds: Annotated[
            float, typer.Option(help="Length of each scene in seconds (>= 3.5; nuScenes: 20).")
        ] = 20.0,
        seed: Annotated[int, typer.Option(help="Seed: same seed, byte-identical dataset.")] = 0,
        image_size: Annotated[
            str, typer.Option(help="Camera image size WxH; intrinsics scale with it.")
        ] = "1600x900",
        workers: Annotated[int, typer.Option(help="Processes generating scenes.")] = 1,
        keyframes_only: Annotated[
            bool, typer.Option(help="Skip the 12 Hz sweeps (2 Hz keyframes only).")
        ] = False,
        overwrite: Annotated[
            bool, typer.Option(help="Replace the dataset folders of a non-empty --out.")
        ] = False,
        town_grid: Annotated[
            int, typer.Option(help="Intersections per side of each synthetic town (2..8).")
        ] = 5,
        brake_lights: Annotated[
            bool,
            typer.Option(help="Vehicles light brake lamps while slowing or standing in traffic."),
        ] = False,
        conflicts: Annotated[
            bool,
            typer.Option(
                help="Add vehicles standing in the ego's lane and close-following leads that "
                "stop (what open-loop collision rates need; `fastdrive conflicts` measures it)."
            ),
        ] = False,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
        quiet: Annotated[bool, typer.Option(help="Same as --no-progress.")] = False,
    ) -> None:
        """Generate a synthetic nuScenes-format dataset (procedural towns, six cameras, masks)."""
        from fastdrive_ros.data.synth.generate import generate_dataset

        size = parse_size(image_size)
        try:
            summary = generate_dataset(
                out,
                scenes=scenes,
                seconds=seconds,
                seed=seed,
                image_size=size,
                sweeps=not keyframes_only,
                workers=workers,
                progress=progress and not quiet,
                overwrite=overwrite,
                town_grid=town_grid,
                brake_lights=brake_lights,
                conflicts=conflicts,
            )
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        typer.echo(
            f"wrote {summary.scenes} scenes, {summary.samples} keyframes, {summary.images} images,"
            f" {summary.annotations} annotations, {summary.bytes_on_disk / 1e6:.1f} MB to "
            f"{summary.root} in {summary.seconds:.1f} s ({summary.images_per_second:.1f} img/s)"
        )
        shares = ", ".join(
            f"{k} {v / max(summary.samples, 1):.0%}" for k, v in summary.behaviours.items()
        )
        typer.echo(f"ego behaviour at keyframes: {shares}")
        typer.echo(
            f"load it with NuScenes(version='{summary.version}', dataroot='{summary.root}'); "
            f"maps: {', '.join(summary.locations)} (synthetic towns, nuScenes names only)"
        )
