"""A separate rclpy process that plays a bag's cameras and odometry at the recorded rate.

    python rclpy_player.py BAG --seconds 12 [--sim-time] [--corrupt CAM:T0-T1] [--silent CAM:T0-T1]

The bag is looped, its stamps shifted so that time only moves forward. With --sim-time, stamps
keep the bag's time base and /clock is published before every message (like `ros2 bag play
--clock`); without it, messages are stamped with the wall-clock time they are due (a live car).
--every N plays only every Nth image of each camera (a rate a slow model keeps up with).
--rate R plays R seconds of bag per wall second (like `ros2 bag play --rate`); with --pace S the
rate then follows the node: at most S seconds of bag per plan it publishes (the median interval of
its last trajectories), so a slow machine still plans several times inside every window below.
--corrupt replaces one camera's JPEG bytes with garbage and --silent drops a camera, between T0
and T1 seconds of play. Prints one JSON summary line (messages per topic) at the end.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections import deque
from pathlib import Path

import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage

PLAYED = {"sensor_msgs/msg/CompressedImage": CompressedImage, "nav_msgs/msg/Odometry": Odometry}
MIN_RATE = 0.05  # a floor, so that a stalled node cannot stretch the play without end


class PlayClock:
    """Maps seconds of play to wall time at a rate that may change while playing."""

    def __init__(self, rate: float) -> None:
        self._lock = threading.Lock()
        self._wall0, self._play0, self.rate = time.monotonic(), 0.0, rate

    def due_in(self, play_s: float) -> float:
        """Wall seconds until `play_s` is due (<= 0: due now)."""
        with self._lock:
            return self._wall0 + (play_s - self._play0) / self.rate - time.monotonic()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._play0 += (now - self._wall0) * self.rate  # keep the play position continuous
            self._wall0, self.rate = now, rate


def pace_by_plans(node: Node, clock: PlayClock, bag_s_per_plan: float, topic: str) -> None:
    """Slow `clock` so that at most `bag_s_per_plan` of bag time passes per trajectory."""
    from fastdrive_ros.msg import Trajectory

    arrivals: deque[float] = deque(maxlen=4)

    def on_trajectory(_: Trajectory) -> None:
        arrivals.append(time.monotonic())
        if len(arrivals) >= 2:
            gaps = sorted(b - a for a, b in zip(arrivals, list(arrivals)[1:]))
            period = gaps[len(gaps) // 2]
            clock.set_rate(min(1.0, max(MIN_RATE, bag_s_per_plan / max(period, 1e-3))))

    node.create_subscription(Trajectory, topic, on_trajectory, QoSProfile(depth=10))


def window(text: str | None) -> tuple[str, float, float] | None:
    if not text:
        return None
    camera, span = text.split(":")
    t0, t1 = span.split("-")
    return camera, float(t0), float(t1)


def load(bag: Path) -> tuple[list[tuple[int, str, bytes, type]], int]:
    """(bag time ns, topic, CDR bytes, rclpy class) in time order, and the bag's length (ns)."""
    from fastdrive_ros.transport.ros_types import typestore

    rows = []
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.msgtype in PLAYED]
        for conn, t, raw in reader.messages(connections=conns):
            rows.append((t, conn.topic, bytes(raw), PLAYED[conn.msgtype]))
    rows.sort(key=lambda r: r[0])
    period = 1_000_000_000 // 12
    return rows, rows[-1][0] - rows[0][0] + period


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bag", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sim-time", action="store_true")
    parser.add_argument("--corrupt")
    parser.add_argument("--silent")
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument(
        "--every", type=int, default=1, help="play every Nth frame of each camera (slow models)"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="bag seconds per wall second")
    parser.add_argument(
        "--pace", type=float, metavar="S", help="at most S bag seconds per plan of the node"
    )
    parser.add_argument("--pace-topic", default="/fastdrive/trajectory")
    args = parser.parse_args()
    if not MIN_RATE <= args.rate <= 1.0:
        parser.error(f"--rate must be in [{MIN_RATE}, 1]")
    if (args.rate != 1.0 or args.pace) and not args.sim_time:
        parser.error("--rate and --pace need --sim-time (live stamps are the wall clock)")
    corrupt, silent = window(args.corrupt), window(args.silent)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    rows, length = load(args.bag)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("fastdrive_test_player")
    pubs = {
        topic: node.create_publisher(cls, topic, qos_profile_sensor_data)
        for _, topic, _, cls in rows
    }
    clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
    counts: dict[str, int] = {}
    time.sleep(args.start_delay)
    first = rows[0][0]
    play_clock, epoch0 = PlayClock(args.rate), time.time_ns()
    wall0 = time.monotonic()
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)

    spinner = threading.Thread(target=spin)
    if args.pace:
        pace_by_plans(node, play_clock, args.pace, args.pace_topic)
        spinner.start()
    frame_of: dict[str, int] = {}  # per topic: index of the next message (= frame number)
    loop = 0
    while not stop.is_set():
        for t, topic, raw, cls in rows:
            offset_ns = t - first + loop * length
            play_s = offset_ns / 1e9
            if play_s >= args.seconds or stop.is_set():
                stop.set()
                break
            while (delay := play_clock.due_in(play_s)) > 0 and not stop.is_set():
                time.sleep(min(delay, 0.1))  # short naps: the rate may change meanwhile
            camera = topic.strip("/").split("/")[0]
            index = frame_of[topic] = frame_of.get(topic, -1) + 1
            if topic.endswith("image_rect_compressed") and index % args.every:
                continue
            if silent and camera == silent[0] and silent[1] <= play_s < silent[2]:
                continue
            msg = deserialize_message(raw, cls)
            # live: the send time, keeping the bag's offsets between cameras
            stamp = (first if args.sim_time else epoch0) + offset_ns
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            if corrupt and camera == corrupt[0] and corrupt[1] <= play_s < corrupt[2]:
                msg.data = b"\xff\xd8 this is not a JPEG" * 10
            if args.sim_time:
                clock = Clock()
                clock.clock.sec, clock.clock.nanosec = (
                    msg.header.stamp.sec,
                    msg.header.stamp.nanosec,
                )
                clock_pub.publish(clock)
            pubs[topic].publish(msg)
            counts[topic] = counts.get(topic, 0) + 1
        loop += 1
    summary = {"messages": counts, "wall_s": time.monotonic() - wall0, "rate": play_clock.rate}
    print(json.dumps(summary), flush=True)
    if spinner.is_alive():
        spinner.join()  # stop is set: ends within one spin_once
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
