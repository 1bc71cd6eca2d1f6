"""A separate rclpy process that records what the fastdrive node publishes, one JSON line each.

    python rclpy_listener.py OUT.jsonl [--node /fastdrive]

Topics: ~/trajectory, ~/path, ~/debug/latency, ~/debug/total_ms, /diagnostics, /rosout. Every
line has the topic and `recv_ns` (wall clock at reception), plus the fields the tests read.
A first line {"topic": "ready"} says the subscriptions exist. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Path
from rcl_interfaces.msg import Log
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64

from fastdrive_ros.msg import FrameLatency, Trajectory

CAMERAS = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _level(raw: Any) -> int:
    return raw[0] if isinstance(raw, (bytes, bytearray)) else int(raw)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--node", default="/fastdrive")
    parser.add_argument(
        "--cameras", action="store_true", help="also record every camera image (stamp only)"
    )
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("fastdrive_test_listener")
    lock = threading.Lock()
    out = open(args.out, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def write(topic: str, **fields: Any) -> None:
        with lock:
            out.write(json.dumps({"topic": topic, "recv_ns": time.time_ns(), **fields}) + "\n")
            out.flush()

    def on_trajectory(msg: Trajectory) -> None:
        write(
            "trajectory",
            stamp_ns=_ns(msg.header.stamp),
            status=int(msg.status),
            points=len(msg.points),
            x_last=float(msg.points[-1].pose.position.x) if msg.points else None,
            kept_tokens=int(msg.kept_tokens),
            total_tokens=int(msg.total_tokens),
            pruner=msg.pruner,
            model_name=msg.model_name,
            planned_at_ns=_ns(msg.planned_at),
        )

    def on_path(msg: Path) -> None:
        write("path", stamp_ns=_ns(msg.header.stamp), poses=len(msg.poses))

    def on_latency(msg: FrameLatency) -> None:
        write(
            "latency",
            stamp_ns=_ns(msg.header.stamp),
            stages={s.stage: s.duration_ms for s in msg.stages},
            total_ms=msg.total_ms,
            frame_age_ms=msg.frame_age_ms,
            sync_spread_ms=msg.sync_spread_ms,
            frames_processed=int(msg.frames_processed),
            frames_dropped=int(msg.frames_dropped),
            missing_cameras=list(msg.missing_cameras),
        )

    def on_total(msg: Float64) -> None:
        write("total_ms", value=msg.data)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            write(
                "diagnostics",
                stamp_ns=_ns(msg.header.stamp),
                level=_level(status.level),
                name=status.name,
                message=status.message,
                values={kv.key: kv.value for kv in status.values},
            )

    def on_rosout(msg: Log) -> None:
        write("rosout", name=msg.name, level=int(msg.level), msg=msg.msg)

    qos = QoSProfile(depth=50)
    base = args.node.rstrip("/")
    node.create_subscription(Trajectory, f"{base}/trajectory", on_trajectory, qos)
    node.create_subscription(Path, f"{base}/path", on_path, qos)
    node.create_subscription(FrameLatency, f"{base}/debug/latency", on_latency, qos)
    node.create_subscription(Float64, f"{base}/debug/total_ms", on_total, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, qos)
    node.create_subscription(Log, "/rosout", on_rosout, QoSProfile(depth=200))
    if args.cameras:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage

        for cam in CAMERAS:

            def on_image(msg: CompressedImage, cam: str = cam) -> None:
                write(f"/{cam}/image_rect_compressed", stamp_ns=_ns(msg.header.stamp))

            node.create_subscription(
                CompressedImage, f"/{cam}/image_rect_compressed", on_image, qos_profile_sensor_data
            )
    write("ready")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    out.close()


if __name__ == "__main__":
    main()
