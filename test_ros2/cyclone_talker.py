"""A Cyclone DDS wire peer process publishing fastdrive_ros/msg/Trajectory (6 points) at 5 Hz.

    python cyclone_talker.py SECONDS --distro jazzy [--topic /fastdrive/trajectory]

Prints {"published": N} at the end.
"""

from __future__ import annotations

import argparse
import json
import time

from fastdrive_ros.transport.dds.peer import RosDdsPeer
from fastdrive_ros.transport.ros_types import typestore


def trajectory(seq: int) -> object:
    t = typestore().types
    point = t["fastdrive_ros/msg/TrajectoryPoint"]
    time_msg = t["builtin_interfaces/msg/Time"]
    points = [
        point(
            time_from_start=t["builtin_interfaces/msg/Duration"](sec=i // 2, nanosec=0),
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=float(i), y=0.0, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
            longitudinal_velocity_mps=2.0,
            lateral_velocity_mps=0.0,
            acceleration_mps2=0.0,
            heading_rate_rps=0.0,
        )
        for i in range(1, 7)
    ]
    return t["fastdrive_ros/msg/Trajectory"](
        header=t["std_msgs/msg/Header"](stamp=time_msg(sec=seq, nanosec=0), frame_id="base_link"),
        points=points,
        status=0,
        status_detail="",
        command=0,
        model_name="cyclone-talker",
        pruner="none",
        keep_ratio=1.0,
        kept_tokens=1,
        total_tokens=1,
        planned_at=time_msg(sec=seq, nanosec=0),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seconds", type=float)
    parser.add_argument("--distro", default="jazzy")
    parser.add_argument("--topic", default="/fastdrive/trajectory")
    args = parser.parse_args()
    sent = 0
    with RosDdsPeer(node_name="fastdrive_cyclone_talker", ros_distro=args.distro) as peer:
        pub = peer.publisher(args.topic, "fastdrive_ros/msg/Trajectory")
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            pub.publish(trajectory(sent))
            sent += 1
            time.sleep(0.2)
    print(json.dumps({"published": sent}), flush=True)


if __name__ == "__main__":
    main()
