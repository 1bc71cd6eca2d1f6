"""`fastdrive play`: a bag played onto the DDS wire by one process reaches a separate subscriber.

Run as a script, this file is that subscriber: it listens to the given topics and prints, per
topic, the message count, payload bytes and a SHA-256 over the re-serialised CDR of every message.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.transport import ros_types

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 4  # at 12 Hz


def _stamp(t_ns: int):
    types = ros_types.typestore().types
    return types["builtin_interfaces/msg/Time"](sec=t_ns // 10**9, nanosec=t_ns % 10**9)


def _header(t_ns: int, frame: str):
    return ros_types.typestore().types["std_msgs/msg/Header"](stamp=_stamp(t_ns), frame_id=frame)


def _transform(t_ns: int, parent: str, child: str, x: float):
    t = ros_types.typestore().types
    return t["geometry_msgs/msg/TransformStamped"](
        header=_header(t_ns, parent),
        child_frame_id=child,
        transform=t["geometry_msgs/msg/Transform"](
            translation=t["geometry_msgs/msg/Vector3"](x=x, y=0.0, z=1.5),
            rotation=t["geometry_msgs/msg/Quaternion"](x=0.5, y=-0.5, z=0.5, w=-0.5),
        ),
    )


def make_bag(path: Path, storage: StoragePlugin) -> dict[str, tuple[str, list[bytes]]]:
    """A small nuScenes-like bag; per topic: its type and the raw CDR of its messages, in order."""
    store = ros_types.typestore()
    t = store.types
    rng = np.random.default_rng(7)
    written: dict[str, tuple[str, list[bytes]]] = {}
    t0 = 1_533_151_603_512_404_000
    with Writer(path, version=8, storage_plugin=storage) as writer:
        conns = {}

        def add(topic: str, msgtype: str):
            conns[topic] = writer.add_connection(topic, msgtype, typestore=store)

        for cam in CAMERA_NAMES:
            add(f"/{cam}/image_rect_compressed", "sensor_msgs/msg/CompressedImage")
            add(f"/{cam}/camera_info", "sensor_msgs/msg/CameraInfo")
        add("/tf_static", "tf2_msgs/msg/TFMessage")
        add("/tf", "tf2_msgs/msg/TFMessage")
        add("/odom", "nav_msgs/msg/Odometry")
        add("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")  # not played

        def write(topic: str, msgtype: str, ts: int, msg) -> None:
            raw = bytes(store.serialize_cdr(msg, msgtype))
            writer.write(conns[topic], ts, raw)
            written.setdefault(topic, (msgtype, []))[1].append(raw)

        static = t["tf2_msgs/msg/TFMessage"](
            transforms=[
                _transform(t0, "base_link", cam, 0.1 * i) for i, cam in enumerate(CAMERA_NAMES)
            ]
        )
        write("/tf_static", "tf2_msgs/msg/TFMessage", t0, static)
        for k in range(FRAMES):
            ts = t0 + k * 83_333_333
            for j, cam in enumerate(CAMERA_NAMES):
                stamp = ts + j * 8_000_000  # nuScenes cameras fire a few ms apart
                image = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                assert ok
                msg = t["sensor_msgs/msg/CompressedImage"](
                    header=_header(stamp, cam), format="jpeg", data=jpeg.reshape(-1)
                )
                write(f"/{cam}/image_rect_compressed", msg.__msgtype__, stamp, msg)
                info = t["sensor_msgs/msg/CameraInfo"](
                    header=_header(stamp, cam),
                    height=48,
                    width=64,
                    distortion_model="plumb_bob",
                    d=np.zeros(5),
                    k=np.array([50.6, 0, 32.6, 0, 50.6, 24.5, 0, 0, 1.0]),
                    r=np.eye(3).reshape(-1),
                    p=np.array([50.6, 0, 32.6, 0, 0, 50.6, 24.5, 0, 0, 0, 1.0, 0]),
                    binning_x=0,
                    binning_y=0,
                    roi=t["sensor_msgs/msg/RegionOfInterest"](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
                    ),
                )
                write(f"/{cam}/camera_info", info.__msgtype__, stamp, info)
            tf = t["tf2_msgs/msg/TFMessage"](transforms=[_transform(ts, "map", "base_link", k)])
            write("/tf", tf.__msgtype__, ts, tf)
            odom = t["nav_msgs/msg/Odometry"](
                header=_header(ts, "map"),
                child_frame_id="base_link",
                pose=t["geometry_msgs/msg/PoseWithCovariance"](
                    pose=t["geometry_msgs/msg/Pose"](
                        position=t["geometry_msgs/msg/Point"](x=float(k), y=0.0, z=0.0),
                        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                    ),
                    covariance=np.linspace(0, 1, 36),
                ),
                twist=t["geometry_msgs/msg/TwistWithCovariance"](
                    twist=t["geometry_msgs/msg/Twist"](
                        linear=t["geometry_msgs/msg/Vector3"](x=12.0, y=0.0, z=0.0),
                        angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.01),
                    ),
                    covariance=np.zeros(36),
                ),
            )
            write("/odom", odom.__msgtype__, ts, odom)
            diag = t["diagnostic_msgs/msg/DiagnosticArray"](header=_header(ts, ""), status=[])
            write("/diagnostics", diag.__msgtype__, ts, diag)
    return written


def digest(raws: list[bytes]) -> str:
    h = hashlib.sha256()
    for raw in raws:
        h.update(len(raw).to_bytes(8, "little") + raw)
    return h.hexdigest()


def listen(spec: list[str], expected: int, timeout_s: float) -> dict:
    """Subscribe to `topic=msgtype` specs until `expected` messages arrived in total."""
    from fastdrive_ros.transport.dds.peer import RosDdsPeer
    from fastdrive_ros.transport.dds.qos import QosProfile

    store = ros_types.typestore()
    got: dict[str, list[bytes]] = {}
    with RosDdsPeer(node_name="play_listener") as peer:
        for item in spec:
            topic, msgtype = item.split("=")
            sensor = msgtype.startswith("sensor_msgs/")
            # A deep reader queue, so a slow CPU never drops best-effort samples here.
            static = topic == "/tf_static"
            qos = QosProfile(reliable=not sensor, depth=1000, transient_local=static)

            def keep(msg, topic=topic, msgtype=msgtype) -> None:
                got.setdefault(topic, []).append(bytes(store.serialize_cdr(msg, msgtype)))

            peer.subscribe(topic, msgtype, keep, qos=qos)
        deadline = time.monotonic() + timeout_s
        while sum(len(v) for v in got.values()) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # anything extra would show up as a count mismatch
    return {
        topic: {"count": len(raws), "bytes": sum(map(len, raws)), "sha256": digest(raws)}
        for topic, raws in got.items()
    }


@pytest.mark.dds
@pytest.mark.parametrize(
    "storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"]
)
def test_play_reaches_a_separate_subscriber(loopback_netns, tmp_path, storage) -> None:
    bag = tmp_path / "bag"
    written = make_bag(bag, storage)
    played = {topic: raws for topic, (_, raws) in written.items() if topic != "/diagnostics"}
    expected = sum(len(v) for v in played.values())
    spec = [f"{topic}={written[topic][0]}" for topic in played]
    listener = subprocess.Popen(
        [sys.executable, __file__, str(expected), *spec], stdout=subprocess.PIPE, text=True
    )
    try:
        player = subprocess.run(
            [sys.executable, "-m", "fastdrive_ros.cli", "play", str(bag), "--no-progress"]
            + ["--wait-subscribers", "1", "--wait-timeout", "30"],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "COLUMNS": "200"},
        )
        out, _ = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert player.returncode == 0, player.stdout + player.stderr
    assert "/diagnostics" not in player.stdout  # only camera, CameraInfo, tf and odometry
    assert "/CAM_BACK_LEFT/image_rect_compressed" in player.stdout
    received = json.loads(out)
    assert sorted(received) == sorted(played)
    for topic, raws in played.items():
        assert received[topic]["count"] == len(raws), topic
        assert received[topic]["bytes"] == sum(map(len, raws)), topic
        assert received[topic]["sha256"] == digest(raws), topic


@pytest.mark.dds
def test_recorded_rate_loop_and_stop(loopback_netns, tmp_path) -> None:
    from fastdrive_ros.transport.dds.peer import RosDdsPeer
    from fastdrive_ros.transport.play import BagPlayer

    bag = tmp_path / "bag"
    make_bag(bag, StoragePlugin.MCAP)
    with RosDdsPeer(node_name="player") as peer:
        with BagPlayer(bag=bag, peer=peer, rate=1.0) as player:
            once = player.run()
        assert once.loops == 1 and once.messages == player.total_messages
        # The bag spans 3 frames at 12 Hz plus 5 x 8 ms camera offsets: 0.29 s of bag time.
        assert once.bag_s == pytest.approx(3 * 0.083333333 + 0.04, abs=1e-6)
        assert once.wall_s >= once.bag_s * 0.95  # paced at the recorded rate, not flat out
        with BagPlayer(bag=bag, peer=peer, rate=4.0, loop=True) as looping:
            sent = []

            def count(topic: str) -> None:
                sent.append(topic)
                if len(sent) == 2 * looping.total_messages:
                    looping.stop()

            summary = looping.run(on_message=count)
        assert summary.loops == 2  # stopped right after the second full pass
        assert summary.messages == 2 * looping.total_messages
        assert {t.topic: t.messages for t in summary.topics}["/odom"] == 2 * FRAMES
        assert summary.wall_s >= 2 * once.bag_s / 4.0 * 0.9


def test_topic_selection_and_errors(tmp_path) -> None:
    from rosbags.rosbag2 import Reader

    from fastdrive_ros.transport.play import BagPlayer, select_connections

    bag = tmp_path / "bag"
    make_bag(bag, StoragePlugin.MCAP)
    with Reader(bag) as reader:
        default = {c.topic for c in select_connections(reader, None)}
        assert "/diagnostics" not in default and {"/tf", "/tf_static", "/odom"} <= default
        assert len(default) == 3 + 2 * len(CAMERA_NAMES)
        chosen = select_connections(reader, ["odom", "/tf"])
        assert sorted(c.topic for c in chosen) == ["/odom", "/tf"]
        with pytest.raises(ValueError, match="topics not in the bag: /nope; it has: "):
            select_connections(reader, ["/nope"])
        with pytest.raises(ValueError, match=r"cannot play /diagnostics \(diagnostic_msgs"):
            select_connections(reader, ["/diagnostics"])
        odom = next(c for c in reader.connections if c.topic == "/odom")
        raw = next(raw for c, _, raw in reader.messages(connections=[odom]))
    BagPlayer._validate(odom, raw)
    wrong = odom._replace(digest="RIHS01_" + "0" * 64)
    with pytest.raises(ValueError, match="different definition"):
        BagPlayer._validate(wrong, raw)
    with pytest.raises(ValueError, match="does not decode"):
        BagPlayer._validate(odom._replace(digest=""), raw[:40])
    with pytest.raises(FileNotFoundError, match="no rosbag2"):
        BagPlayer(bag=tmp_path / "missing", peer=None)
    with pytest.raises(ValueError, match="is not a readable rosbag2"):
        BagPlayer(bag=tmp_path, peer=None)  # a folder without metadata.yaml
    (tmp_path / "notes.txt").write_text("not a bag")
    with pytest.raises(ValueError, match="is not a readable rosbag2"):
        BagPlayer(bag=tmp_path / "notes.txt", peer=None)
    with pytest.raises(ValueError, match="rate must be > 0"):
        BagPlayer(bag=bag, peer=None, rate=0)


if __name__ == "__main__":
    print(json.dumps(listen(sys.argv[2:], expected=int(sys.argv[1]), timeout_s=45.0)))
