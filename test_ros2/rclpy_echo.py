"""An rclpy process (any distribution) that republishes every Trajectory it receives.

    python rclpy_echo.py SECONDS [--src /fastdrive/trajectory] [--dst /echo/trajectory]

Prints {"received": N, "points": [...]} at the end.
"""

from __future__ import annotations

import argparse
import json
import time

import rclpy

from fastdrive_ros.msg import Trajectory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seconds", type=float)
    parser.add_argument("--src", default="/fastdrive/trajectory")
    parser.add_argument("--dst", default="/echo/trajectory")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("fastdrive_test_echo")
    pub = node.create_publisher(Trajectory, args.dst, 10)
    points: set[int] = set()
    received = 0

    def on_msg(msg: Trajectory) -> None:
        nonlocal received
        received += 1
        points.add(len(msg.points))
        pub.publish(msg)

    node.create_subscription(Trajectory, args.src, on_msg, 10)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({"received": received, "points": sorted(points)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
