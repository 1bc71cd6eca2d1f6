"""ROS 2 wire peer over Cyclone DDS: our topics, types and QoS on the wire, without rclpy.

Modules: `config` (the CYCLONEDDS_URI XML), `names` (ROS 2 topic and type naming), `qos`
(rmw_cyclonedds QoS profiles), `idl` (IdlStruct types generated from the rosbags typestore and
converters), `graph` (ros_discovery_info, so `ros2 node list` sees the peer), `endpoints` (its
publishers and subscriptions), `peer` (RosDdsPeer), `bench` (publish->receive latency between two
processes). Only `transport/` may import cyclonedds,
and only lazily: importing this package needs no cyclonedds.
"""

from __future__ import annotations

from fastdrive_ros.transport.dds.config import CycloneConfig
from fastdrive_ros.transport.dds.qos import QosProfile, qos_profile

__all__ = ["CycloneConfig", "QosProfile", "RosDdsPeer", "qos_profile"]


def __getattr__(name: str) -> object:
    # RosDdsPeer's module is import-light too, but keep `import ...dds` minimal.
    if name == "RosDdsPeer":
        from fastdrive_ros.transport.dds.peer import RosDdsPeer

        return RosDdsPeer
    raise AttributeError(name)
