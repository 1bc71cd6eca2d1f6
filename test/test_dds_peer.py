"""RosDdsPeer on a real (loopback-only) DDS wire: delivery, QoS semantics, what ROS tools see."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fastdrive_ros.transport import ros_types

pytest.importorskip("cyclonedds", reason="pip install 'fastdrive_ros[dds]'")

from fastdrive_ros.transport.dds.peer import RosDdsPeer  # noqa: E402
from fastdrive_ros.transport.dds.qos import QosProfile  # noqa: E402

pytestmark = pytest.mark.dds
T = ros_types.typestore().types


def _trajectory(kept: int):
    header = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=1533151603, nanosec=512404000),
        frame_id="base_link",
    )
    point = T["fastdrive_ros/msg/TrajectoryPoint"](
        time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=500_000_000),
        pose=T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=2.5, y=0.1, z=0.0),
            orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
        longitudinal_velocity_mps=5.0,
        lateral_velocity_mps=0.0,
        acceleration_mps2=0.0,
        heading_rate_rps=0.0,
    )
    return T["fastdrive_ros/msg/Trajectory"](
        header=header,
        points=[point] * 6,
        status=0,
        status_detail="",
        command=0,
        model_name="fastdrive-compact",
        pruner="reconpruner",
        keep_ratio=0.25,
        kept_tokens=kept,
        total_tokens=3060,
        planned_at=header.stamp,
    )


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_publish_subscribe_round_trip(loopback_netns) -> None:
    store = ros_types.typestore()
    got, threads = [], []
    with RosDdsPeer(node_name="fastdrive") as talker, RosDdsPeer(node_name="listener") as listener:

        def on_msg(msg) -> None:
            got.append(msg)
            threads.append(threading.current_thread().name)

        sub = listener.subscribe("/fastdrive/trajectory", "fastdrive_ros/msg/Trajectory", on_msg)
        pub = talker.publisher("~/trajectory", "fastdrive_ros/Trajectory")
        assert pub.topic == "/fastdrive/trajectory" and pub.dds_topic == "rt/fastdrive/trajectory"
        assert pub.wait_for_subscribers(1, timeout_s=10)
        sent = [_trajectory(kept) for kept in (765, 1530, 3060)]
        for msg in sent:
            pub.publish(msg)
        assert _wait(lambda: len(got) == 3)
        assert sub.received == 3 and sub.errors == 0 and pub.published == 3
        raw = bytes(store.serialize_cdr(_trajectory(812), "fastdrive_ros/msg/Trajectory"))
        pub.publish_cdr(raw)  # already serialised, e.g. from a bag
        sent.append(_trajectory(812))
        assert _wait(lambda: len(got) == 4)
        with pytest.raises(ValueError, match="not ROS 2 CDR"):
            pub.publish_cdr(b"\x01\x00" + raw[2:])
    msgtype = "fastdrive_ros/msg/Trajectory"
    assert len(got) == len(sent) == 4
    for a, b in zip(sent, got):
        assert bytes(store.serialize_cdr(a, msgtype)) == bytes(store.serialize_cdr(b, msgtype))
    assert set(threads) == {"dds-peer-listener"}


def test_qos_matching_follows_ros2(loopback_netns) -> None:
    with RosDdsPeer(node_name="camera") as camera, RosDdsPeer(node_name="user") as user:
        image = "sensor_msgs/msg/CompressedImage"
        reliable = user.subscribe("/CAM_FRONT/image", image, lambda m: None, qos="default")
        best_effort = user.subscribe(
            "/CAM_FRONT/image", image, lambda m: None, qos=QosProfile(reliable=False, depth=50)
        )
        pub = camera.publisher("/CAM_FRONT/image", image, qos="sensor_data")
        assert pub.wait_for_subscribers(1, timeout_s=10)
        time.sleep(0.5)
        # A best-effort writer never serves a reliable reader (as in ROS 2).
        assert pub.matched_subscriptions() == 1
        assert best_effort.matched_publications() == 1
        assert reliable.matched_publications() == 0


def test_tf_static_reaches_late_subscribers(loopback_netns) -> None:
    tf = T["tf2_msgs/msg/TFMessage"](
        transforms=[
            T["geometry_msgs/msg/TransformStamped"](
                header=T["std_msgs/msg/Header"](
                    stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="base_link"
                ),
                child_frame_id="CAM_FRONT",
                transform=T["geometry_msgs/msg/Transform"](
                    translation=T["geometry_msgs/msg/Vector3"](x=1.7, y=0.0, z=1.5),
                    rotation=T["geometry_msgs/msg/Quaternion"](x=0.5, y=-0.5, z=0.5, w=-0.5),
                ),
            )
        ]
    )
    got = []
    with RosDdsPeer(node_name="statics") as statics:
        statics.publisher("/tf_static", "tf2_msgs/msg/TFMessage", qos="tf_static").publish(tf)
        time.sleep(0.2)
        with RosDdsPeer(node_name="late") as late:
            late.subscribe(
                "/tf_static", "tf2_msgs/msg/TFMessage", got.append, "tf_static_listener"
            )
            assert _wait(lambda: len(got) == 1)
    assert got[0].transforms[0].child_frame_id == "CAM_FRONT"


@pytest.mark.parametrize("distro,gid_size", [("humble", 24), ("jazzy", 16)])
def test_ros_tools_see_topics_types_typehash_and_node(loopback_netns, distro, gid_size) -> None:
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from rosbags.typesys import Stores, get_typestore

    from fastdrive_ros.transport.dds.idl import WireTypes

    graph_store = ros_types.typestore() if distro == "humble" else get_typestore(Stores.ROS2_JAZZY)
    with RosDdsPeer(node_name="fastdrive", namespace="/car", ros_distro=distro) as peer:
        pub = peer.publisher("~/trajectory", "fastdrive_ros/msg/Trajectory")
        sub = peer.subscribe("/odom", "nav_msgs/msg/Odometry", lambda m: None)
        tool = DomainParticipant(0)  # what `ros2 topic list` / `ros2 node list` look at
        endpoints = BuiltinDataReader(tool, BuiltinTopicDcpsPublication)
        found = {}
        assert _wait(
            lambda: (
                found.update({e.topic_name: e for e in endpoints.take(N=100)})
                or "rt/car/fastdrive/trajectory" in found
            )
        )
        endpoint = found["rt/car/fastdrive/trajectory"]
        assert endpoint.type_name == "fastdrive_ros::msg::dds_::Trajectory_"
        user_data = endpoint.qos[Policy.Userdata].data
        assert user_data == (
            f"typehash={ros_types.ros_type_hash('fastdrive_ros/msg/Trajectory')};".encode()
        )
        assert endpoint.qos[Policy.Reliability] == Policy.Reliability.Reliable(
            max_blocking_time=endpoint.qos[Policy.Reliability].max_blocking_time
        )

        wire = WireTypes(store=graph_store).get("rmw_dds_common/msg/ParticipantEntitiesInfo")
        topic = Topic(tool, "ros_discovery_info", wire.idl_class)
        qos = Qos(
            Policy.Reliability.Reliable(max_blocking_time=0),
            Policy.Durability.TransientLocal,
            Policy.History.KeepLast(1),
        )
        graph = DataReader(tool, topic, qos=qos)
        infos = []
        assert _wait(
            lambda: infos.extend(wire.from_idl(s) for s in graph.take(N=10)) or bool(infos)
        )
        nodes = infos[-1].node_entities_info_seq
        assert [(n.node_namespace, n.node_name) for n in nodes] == [("/car", "fastdrive")]
        writer_gids = [bytes(g.data) for g in nodes[0].writer_gid_seq]
        reader_gids = [bytes(g.data) for g in nodes[0].reader_gid_seq]
        # The 16-byte GUID, zero-padded to the distribution's Gid (24 bytes on Humble).
        assert writer_gids == [pub.guid + bytes(gid_size - 16)]
        assert reader_gids == [sub.guid + bytes(gid_size - 16)]
        assert np.frombuffer(infos[-1].gid.data, np.uint8).size == gid_size
        tool.__del__()


def test_callback_errors_do_not_stop_delivery(loopback_netns) -> None:
    got = []

    def flaky(msg) -> None:
        if msg.data == 1.0:
            raise RuntimeError("boom")
        got.append(msg.data)

    with RosDdsPeer(node_name="a") as a, RosDdsPeer(node_name="b") as b:
        sub = b.subscribe("/x", "std_msgs/msg/Float64", flaky)
        pub = a.publisher("/x", "std_msgs/msg/Float64")
        assert pub.wait_for_subscribers(1)
        for value in (1.0, 2.0, 3.0):
            pub.publish(T["std_msgs/msg/Float64"](data=value))
        assert _wait(lambda: len(got) == 2)
        assert sub.errors == 1 and sub.received == 3
        with pytest.raises(TypeError, match="sends std_msgs/msg/Float64"):
            pub.publish(T["std_msgs/msg/Float32"](data=1.0))
        with pytest.raises(TypeError, match="already carries"):
            a.publisher("/x", "std_msgs/msg/Float32")
    assert a.closed
    a.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pub.publish(T["std_msgs/msg/Float64"](data=4.0))
    with pytest.raises(RuntimeError, match="closed"):
        a.publisher("/y", "std_msgs/msg/Float64")


def test_one_config_per_domain_in_a_process(loopback_netns) -> None:
    from fastdrive_ros.transport.dds.config import CycloneConfig

    with RosDdsPeer(node_name="first", domain_id=7):
        other = CycloneConfig(max_participant_index=20)
        with pytest.raises(RuntimeError, match="already open in this process"):
            RosDdsPeer(node_name="second", domain_id=7, config=other)
        with RosDdsPeer(node_name="second", domain_id=7) as same:
            assert not same.closed
