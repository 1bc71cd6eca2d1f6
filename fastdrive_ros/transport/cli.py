"""Subcommands of the transport room: `play` (a bag onto the DDS wire) and `drive` (the node).

Heavy imports (rosbags readers, cyclonedds) stay inside the command functions so that
`fastdrive --help` stays fast. `network_config()` turns the shared --interface/--peer options
into a CycloneConfig for every command that joins the wire.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fastdrive_ros.cli import fail, split_list

if TYPE_CHECKING:
    from fastdrive_ros.transport.dds.config import CycloneConfig

NETWORK_PANEL = "Network (Cyclone DDS, unicast only; the default stays on this host)"

DomainId = Annotated[
    int,
    typer.Option(
        "--domain-id",
        envvar="ROS_DOMAIN_ID",
        min=0,
        max=232,  # DDS ports 7400 + 250 * id + ... must stay below 65536
        help="ROS 2 domain id (0..232).",
    ),
]
Interface = Annotated[
    str,
    typer.Option(
        "--interface",
        help="Address or interface name Cyclone DDS sends from, advertises and discovers on "
        "(127.0.0.1: nothing is sent off this host). Cyclone binds its RECEIVE sockets (UDP "
        "7400 + 250 * domain + 10 and 11, + 2 per extra participant) to 0.0.0.0 whatever this "
        "says (it has no option to bind them): firewall those ports or use a network namespace "
        "to keep other hosts out. The sockets actually bound are logged at start.",
        rich_help_panel=NETWORK_PANEL,
    ),
]
Peers = Annotated[
    list[str] | None,
    typer.Option(
        "--peer",
        help="Host to discover by unicast (repeatable); required on a non-loopback interface.",
        rich_help_panel=NETWORK_PANEL,
    ),
]
ROS_DISTROS = ("humble", "jazzy", "kilted")


def _check_distro(value: str) -> str:
    if value not in ROS_DISTROS:
        raise typer.BadParameter(f"use {' or '.join(ROS_DISTROS)}, got {value!r}")
    return value


RosDistroOption = Annotated[
    str,
    typer.Option(
        "--ros-distro",
        callback=_check_distro,
        help="ROS 2 distribution of the other nodes (humble, jazzy or kilted).",
    ),
]


def network_config(interface: str, peers: list[str] | None) -> CycloneConfig:
    """CycloneConfig from --interface/--peer: loopback unless the user names a network."""
    from fastdrive_ros.transport.dds.config import CycloneConfig

    listed = tuple(split_list(peers))
    try:
        config = (
            CycloneConfig(interface=interface, peers=(interface, *listed))
            if listed
            else CycloneConfig(interface=interface)
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--interface/--peer") from exc
    if not listed and not config.is_loopback:
        raise typer.BadParameter(
            "on a non-loopback interface, list the hosts to discover with --peer "
            "(multicast discovery is off)",
            param_hint="--peer",
        )
    return config


def play(
    bag: Annotated[
        Path, typer.Argument(help="rosbag2 folder (metadata.yaml with .mcap or .db3 files).")
    ],
    rate: Annotated[
        float, typer.Option("--rate", "-r", help="Speed relative to the recording.")
    ] = 1.0,
    topics: Annotated[
        list[str] | None,
        typer.Option(
            "--topics",
            help="Only these topics (repeat or comma-separate). Default: every camera, "
            "CameraInfo, /tf, /tf_static and odometry topic in the bag.",
        ),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Start over at the end, until Ctrl-C.")] = (
        False
    ),
    wait_subscribers: Annotated[
        int,
        typer.Option(
            "--wait-subscribers",
            help="Before starting, wait until every topic has this many subscribers.",
        ),
    ] = 0,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", help="Seconds to wait for --wait-subscribers.")
    ] = 30.0,
    node_name: Annotated[
        str, typer.Option("--node-name", help="ROS node name the player appears as.")
    ] = "fastdrive_player",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    domain_id: DomainId = 0,
    interface: Interface = "127.0.0.1",
    peers: Peers = None,
    ros_distro: RosDistroOption = "humble",
) -> None:
    """Publish a bag's camera, CameraInfo, tf and odometry topics on the ROS 2 DDS wire."""
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from fastdrive_ros.transport.dds.peer import RosDdsPeer
    from fastdrive_ros.transport.dds.sockets import describe, udp_sockets
    from fastdrive_ros.transport.play import BagPlayer

    err = Console(stderr=True)
    config = network_config(interface, peers)
    try:
        with (
            RosDdsPeer(
                domain_id=domain_id, config=config, node_name=node_name, ros_distro=ros_distro
            ) as peer,
            BagPlayer(bag=bag, peer=peer, rate=rate, topics=split_list(topics), loop=loop) as bp,
        ):
            err.print(describe(udp_sockets()), highlight=False)
            if wait_subscribers > 0:
                err.print(f"waiting for {wait_subscribers} subscriber(s) on every topic...")
                if not bp.wait_for_subscribers(wait_subscribers, timeout_s=wait_timeout):
                    raise fail(
                        f"not every topic had {wait_subscribers} subscriber(s) after "
                        f"{wait_timeout:g} s; start the subscribers first or raise --wait-timeout",
                        code=3,
                    )
            bar = tqdm(
                total=None if loop else bp.total_messages,
                unit="msg",
                disable=not progress,
                desc=f"play {bag.name} x{rate:g}",
            )
            try:
                summary = bp.run(on_message=lambda _topic: bar.update())
            except KeyboardInterrupt:
                bp.stop()
                summary = bp.summary
            finally:
                bar.close()
    except (FileNotFoundError, ValueError) as exc:
        raise fail(exc) from exc

    table = Table(title=f"played {bag} ({summary.loops} full pass(es), {summary.wall_s:.1f} s)")
    for column in ("topic", "type", "QoS", "messages", "MB"):
        numeric = column in ("messages", "MB")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for t in summary.topics:
        table.add_row(t.topic, t.msgtype, t.qos, str(t.messages), f"{t.payload_bytes / 1e6:.2f}")
    Console().print(table)
    err.print(f"worst lag behind the recorded schedule: {summary.max_lag_ms:.1f} ms")


def drive(
    transport: Annotated[
        str,
        typer.Option("--transport", help="dds (Cyclone DDS, no ROS install needed) or rclpy."),
    ] = "dds",
    params: Annotated[
        Path | None,
        typer.Option(
            "--params",
            help="ros2 params YAML (default: the package's config/drive.yaml).",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model folder (sets model_dir).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="auto, tensorrt, onnxruntime or torch (sets backend)."),
    ] = None,
    pruner: Annotated[
        str | None, typer.Option("--pruner", help="Token selector, e.g. reconpruner or none.")
    ] = None,
    prune_ratio: Annotated[
        float | None,
        typer.Option("--prune-ratio", help="Fraction of visual tokens DROPPED (keep = 1 - p)."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any parameter as key=value (repeatable), e.g. device=cpu."),
    ] = None,
    node_name: Annotated[str, typer.Option("--node-name", help="ROS node name.")] = "fastdrive",
    namespace: Annotated[str, typer.Option("--namespace", help="ROS namespace.")] = "/",
    duration: Annotated[
        float,
        typer.Option("--duration", min=0.0, help="Stop after this many seconds (0 = run on)."),
    ] = 0.0,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING...")] = (
        "INFO"
    ),
    domain_id: DomainId = 0,
    interface: Interface = "127.0.0.1",
    peers: Peers = None,
    ros_distro: RosDistroOption = "humble",
) -> None:
    """Run the driving node outside `ros2 launch` (same parameters as the launch file)."""
    import threading

    from fastdrive_ros.transport.node_main import (
        params_from_cli,
        setup_logging,
        stop_on_signals,
    )

    if transport not in ("dds", "rclpy"):
        raise typer.BadParameter("use dds or rclpy", param_hint="--transport")
    if transport == "dds":  # under rclpy, Python logging goes to the ROS logger instead
        setup_logging(log_level)
    shortcuts = dict(model_dir=model, backend=backend, pruner=pruner, prune_ratio=prune_ratio)
    node = params_from_cli(params, overrides, shortcuts, node_name=node_name)
    stop = threading.Event()
    stop_on_signals(stop)
    if transport == "rclpy":
        from fastdrive_ros.transport.rclpy_node import main as rclpy_main

        code = rclpy_main(
            args=["fastdrive", "--ros-args", "--log-level", log_level.lower()],
            params=node,
            node_name=node_name,
            namespace=namespace,
            duration_s=duration or None,
            stop=stop,
        )
        raise typer.Exit(code)
    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.transport.dds_node import run_dds_node

    try:
        run_dds_node(
            node,
            domain_id=domain_id,
            config=network_config(interface, peers),
            node_name=node_name,
            namespace=namespace,
            ros_distro=ros_distro,
            duration_s=duration or None,
            stop=stop,
        )
    except RuntimeSetupError as exc:
        raise fail(f"cannot start: {exc}") from exc


def register(app: typer.Typer) -> None:
    """Add this room's subcommands to `app`."""
    app.command("play")(play)
    app.command("drive")(drive)
