"""The Cyclone DDS wire peer (PyPI cyclonedds, no rclpy) against real ROS 2 Kilted nodes (Fast
DDS 3): images both ways with a late-joining Fast DDS participant, and the custom Trajectory type
from the rclpy node under `ros2 launch` decoded by a Cyclone subscriber.

Kilted needs `IgnoreTypeInformation 1.15` in the Cyclone config (dds/config.py) and, for a Fast
DDS participant that starts after the Cyclone one, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (set by
`make ros2-test`; the README says so for users).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conftest import Proc, python, records, wait_for

CAMERAS = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
IMAGE = "sensor_msgs/msg/CompressedImage"


def fastdrive(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastdrive_ros.cli", *args]


def bag_frames(bag: Path) -> dict[str, int]:
    """Images per camera in the bag."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        return {
            c.topic.strip("/").split("/")[0]: c.msgcount
            for c in reader.connections
            if c.topic.endswith("image_rect_compressed")
        }


def per_camera(rows: list[dict]) -> dict[str, int]:
    counts = {c: 0 for c in CAMERAS}
    for row in rows:
        camera = row["topic"].strip("/").split("/")[0]
        if camera in counts and row["topic"].endswith("image_rect_compressed"):
            counts[camera] += 1
    return counts


def test_cyclone_player_to_a_late_joining_rclpy_subscriber(
    scene_bag: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rclpy.jsonl"
    topics = ",".join(f"/{c}/image_rect_compressed" for c in CAMERAS)
    play = Proc(
        "cyclone_play",
        fastdrive(
            "play", str(scene_bag), "--topics", topics, "--ros-distro", "kilted",
            "--wait-subscribers", "1", "--wait-timeout", "60", "--no-progress",
        ),
        tmp_path,
    )  # fmt: skip
    try:
        time.sleep(4.0)  # the Cyclone participant is up first: the rclpy one joins late
        listener = Proc("rclpy_listener", [*python("rclpy_listener.py"), str(out), "--cameras"],
                        tmp_path)  # fmt: skip
        code = play.wait(timeout=120)
        assert code == 0, play.output()[-3000:]
        time.sleep(1.0)
    finally:
        play.interrupt()
        if "listener" in locals():
            listener.interrupt()
            listener.wait(timeout=20)
    counts = per_camera(records(out))
    expected = bag_frames(scene_bag)
    # every image of every camera crossed from Cyclone to Fast DDS (loopback, 12 Hz JPEGs)
    assert all(counts[c] >= expected[c] - 1 for c in CAMERAS), (counts, expected)


def test_rclpy_player_to_a_cyclone_subscriber(scene_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "cyclone.jsonl"
    subs = [f"/{c}/image_rect_compressed={IMAGE}" for c in CAMERAS]
    listener = Proc("cyclone_listener", [*python("cyclone_listener.py"), str(out), *subs],
                    tmp_path)  # fmt: skip
    try:
        wait_for("the Cyclone listener", lambda: bool(records(out, "ready")), 60, listener)
        player = Proc(
            "rclpy_player",
            [*python("rclpy_player.py"), str(scene_bag), "--seconds", "4", "--start-delay", "3"],
            tmp_path,
        )
        assert player.wait(timeout=90) == 0, player.output()[-3000:]
        time.sleep(1.0)
    finally:
        listener.interrupt()
        listener.wait(timeout=20)
    sent = json.loads(player.output().strip().splitlines()[-1])["messages"]
    counts = per_camera(records(out))
    for camera in CAMERAS:
        published = sent[f"/{camera}/image_rect_compressed"]
        assert counts[camera] >= published - 1, (counts, sent)  # best effort on loopback


def test_node_trajectories_cross_to_cyclone_both_ways(scene_bag: Path, tmp_path: Path) -> None:
    """Cyclone `fastdrive play` -> rclpy node (Fast DDS) -> Cyclone subscriber (custom type)."""
    out = tmp_path / "cyclone.jsonl"
    late = tmp_path / "late_rclpy.jsonl"
    launch = Proc("launch", ["ros2", "launch", "fastdrive_ros", "drive.launch.py"], tmp_path)
    listener = Proc(
        "cyclone_listener",
        [*python("cyclone_listener.py"), str(out),
         "/fastdrive/trajectory=fastdrive_ros/msg/Trajectory",
         "/diagnostics=diagnostic_msgs/msg/DiagnosticArray"],
        tmp_path,
    )  # fmt: skip
    procs = [launch, listener]
    try:
        wait_for("node diagnostics at Cyclone", lambda: bool(records(out, "/diagnostics")), 240,
                 launch, listener)  # fmt: skip
        procs.append(
            Proc(
                "cyclone_play",
                fastdrive(
                    "play", str(scene_bag), "--loop", "--ros-distro", "kilted", "--no-progress"
                ),
                tmp_path,
            )  # fmt: skip
        )
        time.sleep(2.0)
        procs.append(Proc("late_rclpy", [*python("rclpy_listener.py"), str(late)], tmp_path))
        ok = lambda: len([r for r in records(out, "/fastdrive/trajectory")  # noqa: E731
                          if r["points"] == 6]) >= 2  # fmt: skip
        wait_for("2 trajectories at the Cyclone subscriber", ok, 180, *procs)
        # The late Fast DDS participant discovers the node. Checked on Float64: in 3 of 7 runs
        # Kilted's Fast DDS (late, with Cyclone peers already up) logged "Inconsistent
        # TypeObject" and never matched topics of nested types (Trajectory, Path, FrameLatency,
        # DiagnosticArray) while Float64 and /rosout flowed; README "Known limit".
        wait_for("the node's ~/debug/total_ms at the late rclpy subscriber",
                 lambda: bool(records(late, "total_ms")), 120, *procs)  # fmt: skip
    finally:
        for p in reversed(procs):
            p.interrupt()
        codes = {p.name: p.wait(timeout=40) for p in reversed(procs)}
    assert codes["launch"] == 0, launch.output()[-3000:]
