"""The rclpy node. Without ROS 2 (our machines) only the import path and the descriptor table
are checked; on a ROS 2 machine (after `colcon build`) the node runs in-process with a fake model
and is fed real messages."""

from __future__ import annotations

import importlib.util
import time

import pytest

from fastdrive_ros.transport.node_params import PARAMS, descriptor_fields

HAVE_RCLPY = importlib.util.find_spec("rclpy") is not None


def test_module_imports_without_rclpy_and_says_what_to_do() -> None:
    from fastdrive_ros.transport import rclpy_node

    if HAVE_RCLPY:
        pytest.skip("rclpy is installed here")
    with pytest.raises(ImportError) as info:
        rclpy_node.require_rclpy()
    text = str(info.value)
    assert "source /opt/ros" in text and "fastdrive drive --transport dds" in text
    with pytest.raises(ImportError):
        rclpy_node.make_node()


def test_descriptor_fields() -> None:
    by_name = {spec.name: descriptor_fields(spec) for spec in PARAMS}
    ratio = by_name["prune_ratio"]
    assert ratio["floating_point_range"] == (0.0, 0.99, 0.0) and ratio["dynamic_typing"]
    assert "DROPPED" in ratio["description"] and ratio["read_only"]
    assert by_name["backend"]["additional_constraints"].startswith("one of: auto, tensorrt")
    assert by_name["torch_threads"]["integer_range"] == (0, 256, 1)
    assert "floating_point_range" not in by_name["model_dir"]


@pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy (ROS 2) is not installed here")
def test_node_plans_frames_in_process() -> None:  # pragma: no cover - needs ROS 2
    import numpy as np
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    from fastdrive_ros.core_types import CAMERA_NAMES
    from fastdrive_ros.msg import Trajectory
    from fastdrive_ros.pipeline.fakes import (
        FakeBackend,
        FakePlanner,
        jpeg_bytes,
        sample_image,
        simple_preprocess,
    )
    from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
    from fastdrive_ros.transport.rclpy_node import make_node

    def build(params, clock):
        return FramePipeline(
            config=params.pipeline_config(),
            backend=FakeBackend(),
            planner=FakePlanner(),
            clock=clock,
            image_size=(56, 84),
            preprocess=simple_preprocess((56, 84)),
        )

    rclpy.init()
    try:
        node = make_node(overrides={"camera_timeout_ms": 50.0}, build=build)
        peer = rclpy.create_node("fastdrive_test_peer")
        got = []
        peer.create_subscription(Trajectory, "/fastdrive/trajectory", got.append, 10)
        cams = {
            c: peer.create_publisher(
                CompressedImage, f"/{c}/image_rect_compressed", qos_profile_sensor_data
            )
            for c in CAMERA_NAMES
        }
        odom_pub = peer.create_publisher(Odometry, "/odom", qos_profile_sensor_data)
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.add_node(peer)
        jpeg = jpeg_bytes(sample_image(96, 54))
        for _ in range(10):
            stamp = peer.get_clock().now().to_msg()
            odom = Odometry()
            odom.header.stamp = stamp
            odom.twist.twist.linear.x = 5.0
            odom_pub.publish(odom)
            for pub in cams.values():
                msg = CompressedImage(format="jpeg", data=np.frombuffer(jpeg, np.uint8).tolist())
                msg.header.stamp = stamp
                pub.publish(msg)
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.01)
        assert len(got) >= 5
        assert got[-1].status == Trajectory.STATUS_OK and len(got[-1].points) == 6
    finally:
        rclpy.try_shutdown()
