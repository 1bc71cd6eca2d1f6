"""`fastdrive demo`: the main job, end to end on a CPU with nothing downloaded.

1. make (or reuse) a short synthetic nuScenes-format scene and its rosbag2 (MCAP),
2. replay the bag in-process through the embedded default model with ReconPruner (50% pruned),
   the clock following the bag so frames that arrive while the model is busy are dropped,
3. print each planned trajectory and the per-stage latency table,
4. write the output bag and a picture: the six cameras with kept tokens, the planned trajectory.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

DEMO_SEED = 20261121  # a scene none of the default model's training or validation sets contain
DEMO_VERSION = "v1.0-synth"


@dataclass(frozen=True)
class DemoPaths:
    """Everything the demo writes, under one folder."""

    root: Path

    @property
    def dataset(self) -> Path:
        return self.root / "synth"

    @property
    def bag(self) -> Path:
        return self.root / "scene_bag"

    @property
    def output_bag(self) -> Path:
        return self.root / "replay_out"

    @property
    def picture(self) -> Path:
        return self.root / "demo.png"


def make_scene_bag(
    paths: DemoPaths, *, seconds: float, image_size: tuple[int, int], progress: bool
) -> str:
    """Synthesise one scene and convert it to a bag, unless an earlier run left both."""
    from fastdrive_ros.data.bag import write_bag
    from fastdrive_ros.data.synth import generate_dataset

    if (paths.bag / "metadata.yaml").is_file():
        return f"reusing {paths.bag}"
    shutil.rmtree(paths.bag, ignore_errors=True)
    start = time.perf_counter()
    generate_dataset(
        paths.dataset,
        scenes=1,
        seconds=seconds,
        seed=DEMO_SEED,
        image_size=image_size,
        progress=progress,
        overwrite=True,
    )
    summary = write_bag(paths.dataset, out=paths.bag, version=DEMO_VERSION, progress=progress)
    return (
        f"made a {seconds:.0f} s synthetic scene ({image_size[0]}x{image_size[1]}, 6 cameras "
        f"at 12 Hz) and {paths.bag} ({summary.messages} messages, "
        f"{summary.disk_bytes / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s"
    )


def read_outputs(bag: Path) -> tuple[list[Any], Any]:
    """Trajectories and the last kept-token overlay from the replay's output bag."""
    from rosbags.highlevel import AnyReader

    from fastdrive_ros.transport.ros_types import typestore

    trajectories, overlay = [], None
    with AnyReader([bag], default_typestore=typestore()) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic.endswith("/trajectory"):
                trajectories.append(reader.deserialize(raw, conn.msgtype))
            elif conn.topic.endswith("/debug/kept_tokens"):
                overlay = reader.deserialize(raw, conn.msgtype)
    return trajectories, overlay


def trajectory_table(trajectories: list[Any]) -> Any:
    """One row per planned frame: camera stamp, status, kept tokens, waypoints at 1/2/3 s."""
    from rich.table import Table

    table = Table(title="planned trajectories (ego frame: x forward, y left, metres)")
    for column in ("t s", "status", "kept/total", "x,y @1 s", "x,y @2 s", "x,y @3 s", "v m/s"):
        table.add_column(column, justify="right", no_wrap=True)
    first = None
    for msg in trajectories:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        first = stamp if first is None else first
        points = [(p.pose.position.x, p.pose.position.y) for p in msg.points]
        cells = [f"{x:.1f},{y:.1f}" for x, y in (points[1::2] if len(points) == 6 else [])]
        cells += [""] * (3 - len(cells))
        speed = f"{msg.points[0].longitudinal_velocity_mps:.1f}" if msg.points else ""
        status = (msg.status_detail or f"failed ({msg.status})") if msg.status else "ok"
        table.add_row(
            f"{stamp - first:.2f}", status, f"{msg.kept_tokens}/{msg.total_tokens}", *cells, speed
        )
    return table


def draw_picture(trajectories: list[Any], overlay: Any, out: Path) -> Path | None:
    """Cameras with kept tokens (left) beside the planned trajectories in bird's-eye view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if overlay is None or not trajectories:
        return None
    mosaic = np.frombuffer(bytes(overlay.data), np.uint8).reshape(overlay.height, overlay.width, 3)
    fig, (ax_img, ax_bev) = plt.subplots(
        1, 2, figsize=(15, 5), gridspec_kw={"width_ratios": [3, 1]}, constrained_layout=True
    )
    ax_img.imshow(mosaic)
    ax_img.set_title(f"six cameras, kept visual tokens bright ({trajectories[-1].pruner})")
    ax_img.axis("off")
    colours = plt.cm.viridis(np.linspace(0, 1, len(trajectories)))
    for msg, colour in zip(trajectories, colours):
        xy = np.array([(0.0, 0.0)] + [(p.pose.position.x, p.pose.position.y) for p in msg.points])
        if len(xy) > 1:
            ax_bev.plot(-xy[:, 1], xy[:, 0], "o-", color=colour, ms=3, lw=1)
    ax_bev.plot([0], [0], "ks", ms=8)
    ax_bev.set_xlabel("left <- y (m) -> right")
    ax_bev.set_ylabel("x forward (m)")
    ax_bev.set_title("planned 3 s trajectories\n(early = dark, late = yellow)")
    ax_bev.set_aspect("equal", adjustable="datalim")
    ax_bev.grid(alpha=0.3)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the scene, bags and picture.")] = Path(
        "out/demo"
    ),
    model: Annotated[
        str, typer.Option(help="Model folder; empty = the embedded default (models/default).")
    ] = "",
    seconds: Annotated[float, typer.Option(help="Length of the synthetic scene.")] = 8.0,
    image_size: Annotated[
        str, typer.Option(help="Camera image size WxH of the synthetic scene.")
    ] = "640x360",
    prune_ratio: Annotated[
        float, typer.Option(help="Fraction of visual tokens ReconPruner drops.")
    ] = 0.5,
    backend: Annotated[str, typer.Option(help="auto, onnxruntime, torch or tensorrt.")] = "auto",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
    ] = True,
) -> None:
    """Synthetic scene -> rosbag2 -> the driving pipeline with ReconPruner -> trajectories."""
    from rich.console import Console

    from fastdrive_ros.cli import fail, parse_image_size
    from fastdrive_ros.data.synth.generate import validate as validate_scene
    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.transport.node_main import default_params_file, node_params, setup_logging
    from fastdrive_ros.transport.node_params import ParamError
    from fastdrive_ros.transport.replay import replay_bag

    console = Console()
    setup_logging("WARNING")
    # Every option is checked before the ~12 s of scene generation, not after it.
    width, height = parse_image_size(image_size)
    try:
        validate_scene(
            scenes=1, seconds=seconds, seed=DEMO_SEED, image_size=(width, height), workers=1,
            town_grid=5,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--seconds/--image-size") from None
    if not 0.0 <= prune_ratio < 1.0:
        raise typer.BadParameter(
            f"must be in [0, 1), got {prune_ratio}", param_hint="--prune-ratio"
        )
    if backend not in ("auto", "onnxruntime", "torch", "tensorrt"):
        raise typer.BadParameter(
            f"use auto, onnxruntime, torch or tensorrt, got {backend!r}", param_hint="--backend"
        )
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file: the demo writes a folder there; pick another path")
    paths = DemoPaths(out)
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create --out {out}: {exc}") from exc
    console.rule("1. synthetic scene and bag")
    console.print(
        make_scene_bag(paths, seconds=seconds, image_size=(width, height), progress=progress)
    )

    console.rule("2. replay through the driving pipeline (in-process, no network)")
    overrides = {"model_dir": model, "pruner": "reconpruner", "prune_ratio": prune_ratio}
    overrides.update(backend=backend, publish_overlay=True)
    try:
        params = node_params(default_params_file(), overrides)
        shutil.rmtree(paths.output_bag, ignore_errors=True)
        summary = replay_bag(paths.bag, out=paths.output_bag, params=params, progress=progress)
    except (ParamError, RuntimeSetupError) as exc:
        raise fail(exc) from exc

    console.rule("3. results")
    trajectories, overlay = read_outputs(paths.output_bag)
    console.print(trajectory_table(trajectories))
    console.print(summary.table())
    picture = draw_picture(trajectories, overlay, paths.picture)
    console.print(f"output bag: {paths.output_bag} ({len(trajectories)} trajectories)")
    if picture is not None:
        console.print(f"picture:    {picture}")
    if not trajectories:
        raise fail("no trajectory was planned: see the drop and failure counts above", code=1)


def register(app: typer.Typer) -> None:
    """Add `fastdrive demo`."""
    app.command("demo")(demo)
