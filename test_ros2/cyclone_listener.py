"""A separate Cyclone DDS process (the project's ROS 2 wire peer, no rclpy) that records messages.

    python cyclone_listener.py OUT.jsonl --distro kilted TOPIC=TYPE [TOPIC=TYPE ...]

One JSON line per message: topic, recv_ns, stamp_ns (header), and `points` for a Trajectory.
A first line {"topic": "ready"}. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from typing import Any

from fastdrive_ros.transport.dds.peer import RosDdsPeer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("subs", nargs="+", help="TOPIC=pkg/msg/Type")
    parser.add_argument("--distro", default="kilted")
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    lock = threading.Lock()
    out = open(args.out, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def handler(topic: str):
        def on_msg(msg: Any) -> None:
            row: dict[str, Any] = {"topic": topic, "recv_ns": time.time_ns()}
            header = getattr(msg, "header", None)
            if header is not None:
                row["stamp_ns"] = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            if hasattr(msg, "points"):
                row["points"] = len(msg.points)
                row["status"] = int(msg.status)
            with lock:
                out.write(json.dumps(row) + "\n")
                out.flush()

        return on_msg

    with RosDdsPeer(node_name="fastdrive_cyclone_listener", ros_distro=args.distro) as peer:
        for item in args.subs:
            topic, msgtype = item.split("=")
            qos = "sensor_data" if "Image" in msgtype else "default"
            peer.subscribe(topic, msgtype, handler(topic), qos=qos)
        with lock:
            out.write(json.dumps({"topic": "ready", "recv_ns": time.time_ns()}) + "\n")
            out.flush()
        while not stop.is_set():
            time.sleep(0.1)
    out.close()


if __name__ == "__main__":
    main()
