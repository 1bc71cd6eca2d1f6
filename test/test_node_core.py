from __future__ import annotations

import math

import numpy as np
import pytest

from fastdrive_ros.core_types import CAMERA_NAMES, PlanFailure
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.fakes import (
    FakeBackend,
    FakePlanner,
    jpeg_bytes,
    sample_image,
    simple_preprocess,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline, PipelineInfo
from fastdrive_ros.pipeline.types import HealthLevel
from fastdrive_ros.transport import node_messages as m
from fastdrive_ros.transport.node_core import (
    NodeCore,
    camera_from_compressed,
    camera_from_image,
    compressed_encoding,
    odometry_from_msg,
)
from fastdrive_ros.transport.node_params import validate_params
from fastdrive_ros.transport.ros_types import typestore

MS = 1_000_000
STORE = typestore()
T = STORE.types


def hdr(stamp_ns: int, frame: str = "") -> object:
    sec, ns = divmod(stamp_ns, 1_000_000_000)
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec, ns), frame_id=frame
    )


def compressed(stamp_ns: int, data: bytes, fmt: str = "jpeg") -> object:
    return T["sensor_msgs/msg/CompressedImage"](
        header=hdr(stamp_ns, "CAM"), format=fmt, data=np.frombuffer(data, np.uint8)
    )


def odometry(stamp_ns: int, x: float, yaw: float, vx: float, wz: float) -> object:
    g = "geometry_msgs/msg/"
    pose = T[g + "Pose"](
        position=T[g + "Point"](x, 2.0, 0.0),
        orientation=T[g + "Quaternion"](0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)),
    )
    twist = T[g + "Twist"](
        linear=T[g + "Vector3"](vx, 0.1, 0.0), angular=T[g + "Vector3"](0, 0, wz)
    )
    return T["nav_msgs/msg/Odometry"](
        header=hdr(stamp_ns, "map"),
        child_frame_id="base_link",
        pose=T[g + "PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=T[g + "TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
    )


def test_input_conversions() -> None:
    jpeg = jpeg_bytes(sample_image(32, 16))
    frame = camera_from_compressed("CAM_FRONT", compressed(5 * MS + 7, jpeg), received_ns=9)
    assert frame.stamp_ns == 5 * MS + 7 and frame.encoding == "jpeg" and frame.received_ns == 9
    assert bytes(frame.data) == jpeg
    assert compressed_encoding("bgr8; jpeg compressed bgr8") == "jpeg"
    assert compressed_encoding("rgb8; png compressed rgb8") == "png"
    assert compressed_encoding("h264") == "h264"  # the pipeline rejects it, counted
    raw = T["sensor_msgs/msg/Image"](
        header=hdr(MS),
        height=2,
        width=3,
        encoding="BGR8",
        is_bigendian=0,
        step=9,
        data=np.arange(18, dtype=np.uint8),
    )
    frame = camera_from_image("CAM_BACK", raw, received_ns=0)
    assert (frame.width, frame.height, frame.step, frame.encoding) == (3, 2, 9, "bgr8")
    odom = odometry_from_msg(odometry(3 * MS, 1.5, 2.5, 4.0, 0.3))
    assert odom.stamp_ns == 3 * MS and odom.x == 1.5 and odom.y == 2.0
    assert odom.yaw == pytest.approx(2.5) and odom.vx == 4.0 and odom.vy == 0.1
    assert odom.yaw_rate == 0.3


def test_rclpy_style_buffers_are_wrapped_without_a_copy() -> None:
    import array
    from types import SimpleNamespace

    from fastdrive_ros.pipeline.decode import decode_frame

    rgb = sample_image(6, 4, seed=2)
    stamp = SimpleNamespace(sec=1, nanosec=5)
    for data in (array.array("B", rgb.tobytes()), list(rgb.tobytes())):  # rclpy uint8[]
        msg = SimpleNamespace(
            header=SimpleNamespace(stamp=stamp),
            height=4,
            width=6,
            encoding="rgb8",
            step=18,
            data=data,
        )
        frame = camera_from_image("CAM_BACK", msg, received_ns=0)
        assert frame.nbytes == rgb.nbytes
        if isinstance(data, array.array):
            assert np.shares_memory(frame.data, np.frombuffer(data, np.uint8))
        np.testing.assert_array_equal(decode_frame(frame, max_bytes=1 << 20), rgb)


def test_waypoint_kinematics() -> None:
    wps = np.stack([np.arange(1, 7) * 5.0, np.zeros(6)], axis=1)  # 10 m/s straight
    kin = m.waypoint_kinematics(wps, speed0=8.0)
    np.testing.assert_allclose(kin["speed"], 10.0)
    np.testing.assert_allclose(kin["accel"], [4.0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(kin["heading"], 0.0)
    left = np.array([[1, 0], [2, 1], [2, 2], [2, 2], [2, 2], [2, 2]], dtype=float)
    kin = m.waypoint_kinematics(left, speed0=2.0)
    assert kin["heading"][1] == pytest.approx(math.pi / 4)
    assert kin["heading"][2] == pytest.approx(math.pi / 2)
    assert kin["heading"][3] == pytest.approx(math.pi / 2)  # standing: heading held
    assert kin["yaw_rate"][1] == pytest.approx(math.pi / 4 / 0.5)


@pytest.fixture
def core():
    clock = ManualClock()
    planner = FakePlanner(clock=clock, latency_ms=5.0)
    pipeline = FramePipeline(
        config=validate_params({"camera_rate_hz": 0.1}).pipeline_config(),
        backend=FakeBackend(clock=clock, latency_ms=20.0),
        planner=planner,
        clock=clock,
        image_size=(56, 112),
        preprocess=simple_preprocess((56, 112)),
        info=PipelineInfo(
            model_name="tiny", pruner="reconpruner", prune_ratio=0.5, backend="torch"
        ),
        keep_images=True,
    )
    params = validate_params({"publish_overlay": True, "camera_rate_hz": 0.1})
    node = NodeCore(params=params, pipeline=pipeline, factory=m.RosbagsFactory())
    return node, pipeline, planner, clock


def feed(node: NodeCore, clock: ManualClock, t_ms: float) -> None:
    jpeg = jpeg_bytes(sample_image(112, 56))
    clock.set(int(t_ms * MS))
    subs = {s.topic: s for s in node.subscriptions()}
    subs["/odom"].handler(odometry(int(t_ms * MS), 6.0 * t_ms / 1e3, 0.0, 6.0, 0.0))
    for name in CAMERA_NAMES:
        subs[f"/{name}/image_rect_compressed"].handler(compressed(int(t_ms * MS), jpeg))


def test_topics_and_qos(core) -> None:
    node = core[0]
    subs = node.subscriptions()
    assert [s.topic for s in subs][:6] == [f"/{c}/image_rect_compressed" for c in CAMERA_NAMES]
    assert all(s.qos == "sensor_data" for s in subs)
    assert subs[-1].msgtype == "nav_msgs/msg/Odometry"
    topics = {p.key: p.topic for p in node.publications()}
    assert topics["trajectory"] == "~/trajectory" and topics["diagnostics"] == "/diagnostics"
    assert (
        topics["debug/total"] == "~/debug/total_ms" and topics["overlay"] == "~/debug/kept_tokens"
    )


def test_outputs_are_valid_messages_with_the_right_values(core) -> None:
    node, pipeline, _, clock = core
    feed(node, clock, 1000)
    out = pipeline.step()
    msgs = dict(node.outputs(out, now_ns=clock.now_ns()))
    for key, msg in msgs.items():  # every message serialises to ROS 2 CDR and back
        raw = STORE.serialize_cdr(msg, msg.__msgtype__)
        assert STORE.deserialize_cdr(raw, msg.__msgtype__) is not None, key
    traj = msgs["trajectory"]
    assert (traj.header.stamp.sec, traj.header.stamp.nanosec) == (1, 0)
    assert traj.header.frame_id == "base_link" and traj.status == 0 and traj.status_detail == ""
    assert len(traj.points) == 6 and traj.points[-1].time_from_start.sec == 3
    assert traj.points[0].pose.position.x == pytest.approx(3.0)  # 6 m/s x 0.5 s
    assert traj.points[0].longitudinal_velocity_mps == pytest.approx(6.0)
    assert (traj.model_name, traj.pruner, traj.keep_ratio) == ("tiny", "reconpruner", 0.5)
    assert (traj.kept_tokens, traj.total_tokens) == (24, 48)
    assert traj.planned_at.nanosec == 25 * MS  # 20 + 5 ms charged by the fakes
    path = msgs["path"]
    assert len(path.poses) == 7 and path.poses[0].pose.position.x == 0.0
    assert path.poses[6].header.stamp.sec == 4
    diag = msgs["diagnostics"].status[0]
    assert diag.level == 0 and diag.name == "fastdrive: VLA planner"
    values = {kv.key: kv.value for kv in diag.values}
    assert values["pruner"] == "reconpruner" and "total_ms_p95" in values
    lat = msgs["latency"]
    assert [s.stage for s in lat.stages][:2] == ["queue", "decode"]
    assert lat.frame_age_ms == pytest.approx(25.0) and lat.frames_processed == 1
    assert lat.missing_cameras == []
    assert msgs["debug/encode"].data == pytest.approx(16.0)
    overlay = msgs["overlay"]
    assert overlay.encoding == "rgb8" and overlay.width == 960 and overlay.height == 320
    assert overlay.data.size == 960 * 320 * 3


def test_failed_plan_is_published_with_its_status(core) -> None:
    node, pipeline, planner, clock = core
    planner.answer = "unparseable"
    feed(node, clock, 1000)
    out = pipeline.step()
    assert isinstance(out.plan, PlanFailure)
    msgs = dict(node.outputs(out, now_ns=clock.now_ns()))
    assert msgs["trajectory"].status == 1 and msgs["trajectory"].points == []
    assert "PLANNING" in msgs["trajectory"].status_detail
    assert msgs["path"].poses == []


def test_malformed_messages_are_counted_not_raised(core, caplog) -> None:
    node, pipeline, _, clock = core
    subs = {s.topic: s for s in node.subscriptions()}
    subs["/CAM_FRONT/image_rect_compressed"].handler(object())
    subs["/odom"].handler(None)
    assert pipeline.counters.get("rejected/message") == 2
    assert node.conversion_errors == 2
    assert "could not be used" in caplog.text
    feed(node, clock, 1000)
    assert pipeline.step() is not None  # still working


def test_idle_diagnostics_report_stale(core) -> None:
    node, pipeline, _, clock = core
    clock.set(5000 * MS)
    key, msg = node.diagnostics(pipeline.health(), clock.now_ns())
    assert key == "diagnostics" and msg.status[0].level == int(HealthLevel.STALE)
    assert msg.header.stamp.sec == 5


def test_frame_latency_stages_sum_to_at_most_total_ms() -> None:
    """FrameLatency promises sum(stages) <= total_ms: sub-stages of "plan" must not be counted
    twice. Real sleeps (no ManualClock) so the wall-clock total is what a real backend sees."""
    from fastdrive_ros.pipeline.clock import SystemClock

    clock = SystemClock()
    pipeline = FramePipeline(
        config=validate_params({"camera_rate_hz": 0.1}).pipeline_config(),
        backend=FakeBackend(latency_ms=15.0),
        planner=FakePlanner(latency_ms=20.0),
        clock=clock,
        image_size=(56, 112),
        preprocess=simple_preprocess((56, 112)),
    )
    node = NodeCore(
        params=validate_params({"camera_rate_hz": 0.1}),
        pipeline=pipeline,
        factory=m.RosbagsFactory(),
    )
    jpeg = jpeg_bytes(sample_image(112, 56))
    subs = {s.topic: s for s in node.subscriptions()}
    for _ in range(3):
        now = clock.now_ns()
        subs["/odom"].handler(odometry(now, 0.0, 0.0, 5.0, 0.0))
        for name in CAMERA_NAMES:
            subs[f"/{name}/image_rect_compressed"].handler(compressed(now, jpeg))
        out = pipeline.step()
        assert out is not None
        lat = dict(node.outputs(out, now_ns=clock.now_ns()))["latency"]
        names = [s.stage for s in lat.stages]
        assert "plan" in names and "prefill" not in names and "decode_tokens" not in names
        total = sum(s.duration_ms for s in lat.stages)
        assert total <= lat.total_ms + 1e-6, (names, total, lat.total_ms)
        assert total >= 35.0  # the fakes' 15 + 20 ms are in it
