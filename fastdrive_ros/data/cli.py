"""`fastdrive masks` and `fastdrive bag`: nuScenes-FG masks from annotations, rosbag2 conversion.

Heavy imports (devkit, rosbags, OpenCV) happen inside the commands, so `fastdrive --help` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fastdrive_ros.cli import fail

DATAROOT_HELP = "nuScenes dataroot (samples/, sweeps/, maps/ and the version folder)."
VERSION_HELP = "Table folder name, e.g. v1.0-mini, v1.0-trainval or v1.0-synth."
SCENE_HELP = "Only this scene (repeat for several); default: every scene."


def masks(
    dataroot: Annotated[Path, typer.Option(help=DATAROOT_HELP)],
    version: Annotated[str, typer.Option(help=VERSION_HELP)],
    out: Annotated[
        Path, typer.Option(help="Output root: writes fg_masks/ (and class_maps/) here.")
    ],
    scene: Annotated[list[str] | None, typer.Option(help=SCENE_HELP)] = None,
    sweeps: Annotated[
        bool, typer.Option(help="Also the 12 Hz sweep images, not only keyframes.")
    ] = False,
    class_maps: Annotated[
        bool, typer.Option(help="Also write class maps (SEMANTIC_CLASSES ids, 255 = unassigned).")
    ] = False,
    segmenter: Annotated[
        str | None,
        typer.Option(help="Optional learned segmenter 'package.module:factory', OR-ed in."),
    ] = None,
    segmenter_threshold: Annotated[
        float, typer.Option(help="Segmenter probability counted as foreground.")
    ] = 0.5,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    overwrite: Annotated[
        bool, typer.Option(help="Replace mask files that exist already under --out.")
    ] = False,
    min_visibility: Annotated[
        int,
        typer.Option(
            min=1, max=4, help="Skip boxes less visible than this nuScenes level (1 = keep all)."
        ),
    ] = 1,
) -> None:
    """Build nuScenes-FG masks from 3D box annotations and the map (real nuScenes)."""
    from fastdrive_ros.data.errors import DatasetError
    from fastdrive_ros.data.fg_masks import MaskConfig, build_masks, load_segmenter

    try:
        seg = load_segmenter(segmenter) if segmenter else None
        summary = build_masks(
            dataroot=dataroot,
            version=version,
            out=out,
            scenes=scene or None,
            sweeps=sweeps,
            class_maps=class_maps,
            segmenter=seg,
            segmenter_threshold=segmenter_threshold,
            progress=progress,
            overwrite=overwrite,
            config=MaskConfig(min_visibility=min_visibility),
        )
    except (DatasetError, ValueError, ImportError, TypeError, FileExistsError) as exc:
        raise fail(exc) from exc
    rate = summary.images / summary.seconds if summary.seconds > 0 else float("inf")
    typer.echo(
        f"wrote {summary.images} masks of {summary.scenes} scene(s) to {summary.out} "
        f"in {summary.seconds:.1f} s ({rate:.1f} img/s)"
    )


def bag(
    dataroot: Annotated[Path, typer.Option(help=DATAROOT_HELP)],
    version: Annotated[str, typer.Option(help=VERSION_HELP)],
    out: Annotated[Path, typer.Option(help="Bag folder to create (must not exist).")],
    scene: Annotated[list[str] | None, typer.Option(help=SCENE_HELP)] = None,
    storage: Annotated[
        str, typer.Option(help="rosbag2 storage plugin: mcap (default) or sqlite3.")
    ] = "mcap",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Convert nuScenes scenes to a rosbag2 folder (cameras, camera_info, tf, odom)."""
    from fastdrive_ros.data.bag import write_bag
    from fastdrive_ros.data.errors import DatasetError

    try:
        summary = write_bag(
            dataroot,
            version=version,
            out=out,
            scenes=scene or None,
            storage=storage,  # type: ignore[arg-type]
            progress=progress,
        )
    except (DatasetError, ValueError, FileExistsError) as exc:
        raise fail(exc) from exc
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary.path} ({summary.storage}, bag version 8)")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for topic, count in summary.topics.items():
        table.add_row(topic, str(count))
    console = Console()
    console.print(table)
    mb = summary.disk_bytes / 1e6
    console.print(
        f"{summary.messages} messages, {len(summary.scenes)} scene(s), {summary.duration_s:.1f} s "
        f"of data, {mb:.1f} MB on disk, written in {summary.wall_s:.2f} s "
        f"({summary.messages / max(summary.wall_s, 1e-9):.0f} msg/s, "
        f"{mb / max(summary.wall_s, 1e-9):.1f} MB/s)"
    )
    if len(summary.scenes) > 1:
        console.print(
            "note: the scenes keep their dataset times, so a player waits through the gaps "
            "between them; write one bag per scene (--scene NAME) to avoid that"
        )


def register(app: typer.Typer) -> None:
    """Add this room's subcommands to `app`."""
    app.command("masks")(masks)
    app.command("bag")(bag)
