"""`fastdrive bag` output read back by independent readers (mcap + mcap-ros2-support; sqlite3).

The round trip runs on the synthetic dataset (session fixture `synth_dataset`, conftest.py): both
scenes, all 12 Hz images. The sqlite3 bag is read with the stdlib sqlite3 module and decoded with
mcap_ros2's dynamic decoder built from the message definitions stored in the bag, so rosbags never
checks itself.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from nusc_tiny import write_tiny_nuscenes
from typer.testing import CliRunner

from fastdrive_ros.cli import build_app
from fastdrive_ros.core_types import CAMERA_NAMES

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_nuscenes(tmp_path_factory.mktemp("bagdata"), can_bus=True, seconds=3.0)


def _tables(root: Path) -> dict[str, list[dict]]:
    return {
        name: json.loads((root / VERSION / f"{name}.json").read_text())
        for name in ("sample_data", "calibrated_sensor", "sensor", "ego_pose")
    }


def _read_mcap(path: Path) -> list[tuple[str, int, object]]:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (file,) = path.glob("*.mcap")
    with file.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        return [
            (channel.topic, message.log_time, decoded)
            for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=False)
        ]


def _read_sqlite(path: Path) -> list[tuple[str, int, object]]:
    from mcap_ros2._dynamic import generate_dynamic

    (file,) = path.glob("*.db3")
    con = sqlite3.connect(file)
    try:
        defs = {
            t: generate_dynamic(t, text)[t]
            for t, text in con.execute(
                "SELECT topic_type, encoded_message_definition FROM message_definitions"
            )
        }
        topics = {
            tid: (name, typ) for tid, name, typ in con.execute("SELECT id, name, type FROM topics")
        }
        rows = con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id").fetchall()
    finally:
        con.close()
    return [(topics[tid][0], ts, defs[topics[tid][1]](data)) for tid, ts, data in rows]


def _stamp_us(msg: object) -> int | None:
    header = getattr(msg, "header", None)
    return None if header is None else header.stamp.sec * 1_000_000 + header.stamp.nanosec // 1000


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_reads_back_independently(synth_dataset, tmp_path, storage):
    dataset = synth_dataset
    out = tmp_path / f"bag_{storage}"
    result = CliRunner().invoke(
        build_app(),
        ["bag", "--dataroot", str(dataset), "--version", VERSION, "--out", str(out),
         "--storage", storage, "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8
    assert meta["storage_identifier"] == storage
    qos = {t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
           for t in meta["topics_with_message_count"]}  # fmt: skip
    assert yaml.safe_load(qos["/tf_static"])[0]["durability"] == 1  # transient local

    messages = _read_mcap(out) if storage == "mcap" else _read_sqlite(out)
    tables = _tables(dataset)
    channel_of = {s["token"]: s["channel"] for s in tables["sensor"]}
    calib = {c["token"]: c for c in tables["calibrated_sensor"]}
    poses = {p["token"]: p for p in tables["ego_pose"]}
    cam_sd = [
        sd for sd in tables["sample_data"]
        if channel_of[calib[sd["calibrated_sensor_token"]]["sensor_token"]] in CAMERA_NAMES
    ]  # fmt: skip
    pose_times = {poses[sd["ego_pose_token"]]["timestamp"] for sd in cam_sd}

    counts = Counter(topic for topic, _, _ in messages)
    per_channel = Counter(channel_of[calib[sd["calibrated_sensor_token"]]["sensor_token"]]
                          for sd in cam_sd)  # fmt: skip
    scenes = json.loads((dataset / VERSION / "scene.json").read_text())
    # /tf_static once per scene, at its first message
    expected = {"/tf_static": len(scenes), "/tf": len(pose_times), "/odom": len(pose_times)}
    for ch in CAMERA_NAMES:
        expected[f"/{ch}/image_rect_compressed"] = per_channel[ch]
        expected[f"/{ch}/camera_info"] = per_channel[ch]
    assert dict(counts) == expected

    times = [t for _, t, _ in messages]
    assert times == sorted(times), "messages must be written in timestamp order"
    assert messages[0][0] == "/tf_static"

    by_stamp = {sd["timestamp"]: sd for sd in cam_sd}
    pose_at = {
        poses[sd["ego_pose_token"]]["timestamp"]: poses[sd["ego_pose_token"]] for sd in cam_sd
    }
    seen = defaultdict(int)
    odom: list[tuple[int, float, float, float]] = []
    for topic, log_time, msg in messages:
        stamp_us = _stamp_us(msg)
        if topic.endswith("/camera_info"):
            sd = by_stamp[stamp_us]
            cs = calib[sd["calibrated_sensor_token"]]
            np.testing.assert_allclose(np.reshape(msg.k, (3, 3)), cs["camera_intrinsic"])
            np.testing.assert_allclose(np.reshape(msg.p, (3, 4))[:, :3], cs["camera_intrinsic"])
            assert (msg.width, msg.height) == (sd["width"], sd["height"])
            assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
            assert msg.header.frame_id == topic.split("/")[1]
            assert log_time == stamp_us * 1000
        elif topic.endswith("/image_rect_compressed"):
            sd = by_stamp[stamp_us]
            assert msg.format == "jpeg"
            assert bytes(msg.data) == (dataset / sd["filename"]).read_bytes()
            seen[topic] += 1
        elif topic == "/tf_static":
            children = {t.child_frame_id: t for t in msg.transforms}
            assert set(children) == set(CAMERA_NAMES)
            assert all(t.header.frame_id == "base_link" for t in msg.transforms)
        elif topic == "/odom":
            assert (msg.header.frame_id, msg.child_frame_id) == ("map", "base_link")
            pose = pose_at[stamp_us]
            position = msg.pose.pose.position
            np.testing.assert_allclose([position.x, position.y], pose["translation"][:2])
            q = msg.pose.pose.orientation
            np.testing.assert_allclose([q.w, q.x, q.y, q.z], pose["rotation"], atol=1e-9)
            odom.append((stamp_us, position.x, position.y, msg.twist.twist.linear.x))
        elif topic == "/tf":
            (tf,) = msg.transforms
            assert (tf.header.frame_id, tf.child_frame_id) == ("map", "base_link")
    assert sum(seen.values()) == len(cam_sd)
    # the odometry twist agrees with the motion of its own poses (within a scene, ~0.25 s apart)
    for (t0, x0, y0, v0), (t1, x1, y1, _) in zip(odom[::18], odom[18::18]):
        if 0 < t1 - t0 < 400_000:
            speed = np.hypot(x1 - x0, y1 - y0) / ((t1 - t0) * 1e-6)
            assert v0 == pytest.approx(speed, abs=1.0)


def test_bag_errors(tiny, tmp_path):
    runner = CliRunner()
    bad_scene = runner.invoke(
        build_app(),
        ["bag", "--dataroot", str(tiny), "--version", "v1.0-tiny", "--out",
         str(tmp_path / "b"), "--scene", "scene-0042"],
    )  # fmt: skip
    assert bad_scene.exit_code == 2
    assert "valid scenes: scene-0001" in bad_scene.output
    bad_storage = runner.invoke(
        build_app(),
        ["bag", "--dataroot", str(tiny), "--version", "v1.0-tiny", "--out",
         str(tmp_path / "c"), "--storage", "rosbag1"],
    )  # fmt: skip
    assert bad_storage.exit_code == 2 and "storage" in bad_storage.output
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("name", ["../../../../../../etc/passwd", "/etc/passwd"])
def test_bag_refuses_image_names_outside_the_dataroot(tmp_path, name):
    """Issue 11: a sample_data.json naming ../ or an absolute file put /etc/passwd in a bag."""
    root = write_tiny_nuscenes(tmp_path / "ds", seconds=1.0)
    table = root / "v1.0-tiny" / "sample_data.json"
    records = json.loads(table.read_text())
    records[3]["filename"] = name
    table.write_text(json.dumps(records))
    result = CliRunner().invoke(
        build_app(),
        ["bag", "--dataroot", str(root), "--version", "v1.0-tiny", "--out", str(tmp_path / "b")],
    )
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and name in result.output
    assert "relative to the dataroot" in result.output
    assert not (tmp_path / "b").exists()  # refused before anything was written
