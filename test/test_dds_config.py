"""Cyclone configuration, ROS 2 naming and QoS of the wire peer, and its network-safety refusals.

Nothing here starts a DDS participant.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from fastdrive_ros.transport.dds.config import CycloneConfig
from fastdrive_ros.transport.dds.names import dds_topic_name, dds_type_name, resolve_topic
from fastdrive_ros.transport.dds.qos import PROFILES, QosProfile, qos_profile

NS = {"c": "https://cdds.io/config"}


def test_loopback_config_is_unicast_on_127_0_0_1() -> None:
    config = CycloneConfig.loopback()
    assert config.is_loopback
    root = ET.fromstring(config.to_xml())
    domain = root.find("c:Domain", NS)
    assert domain is not None and domain.get("Id") == "any"
    iface = domain.find("c:General/c:Interfaces/c:NetworkInterface", NS)
    assert iface.get("address") == "127.0.0.1" and iface.get("multicast") == "false"
    assert domain.find("c:General/c:AllowMulticast", NS).text == "false"
    assert domain.find("c:Discovery/c:ParticipantIndex", NS).text == "auto"
    peers = [p.get("address") for p in domain.findall("c:Discovery/c:Peers/c:Peer", NS)]
    assert peers == ["127.0.0.1"]
    # Ask for a big UDP buffer without failing where the kernel allows less (max, not min).
    rcvbuf = domain.find("c:Internal/c:SocketReceiveBufferSize", NS)
    assert rcvbuf.get("max") == "16MB" and rcvbuf.get("min") is None
    # Kilted's Fast DDS 3 matches nothing unless its XTypes type information is ignored.
    ignore = domain.find("c:Compatibility/c:IgnoreTypeInformation", NS)
    assert ignore is not None and ignore.text == "1.15"


def test_network_configs_are_not_loopback() -> None:
    lan = CycloneConfig.network(interface="192.168.1.20", peers=("192.168.1.20", "192.168.1.7"))
    assert not lan.is_loopback
    root = ET.fromstring(lan.to_xml())
    assert root.find(".//c:NetworkInterface", NS).get("address") == "192.168.1.20"
    assert not CycloneConfig(interface="127.0.0.1", peers=("10.0.0.2",)).is_loopback
    assert not CycloneConfig(allow_multicast=True).is_loopback
    named = CycloneConfig(interface="lo", peers=("localhost", "::1"))
    assert named.is_loopback
    assert ET.fromstring(named.to_xml()).find(".//c:NetworkInterface", NS).get("name") == "lo"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interface": '127.0.0.1"/><Evil/>'},
        {"peers": ()},
        {"max_participant_index": 0},
        {"socket_receive_buffer_mb": 0},
        {"verbosity": "loud"},
    ],
)
def test_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ValueError):
        CycloneConfig(**kwargs)


def test_ros2_names() -> None:
    assert resolve_topic("/odom", node_name="fastdrive") == "/odom"
    assert resolve_topic("odom", node_name="fastdrive", namespace="/car") == "/car/odom"
    assert resolve_topic("~/trajectory", node_name="fastdrive") == "/fastdrive/trajectory"
    assert (
        resolve_topic("~/debug/latency", node_name="fastdrive", namespace="/car/a")
        == "/car/a/fastdrive/debug/latency"
    )
    assert dds_topic_name("/CAM_FRONT/image_rect_compressed", node_name="n") == (
        "rt/CAM_FRONT/image_rect_compressed"
    )
    assert dds_type_name("sensor_msgs/msg/CompressedImage") == (
        "sensor_msgs::msg::dds_::CompressedImage_"
    )
    assert dds_type_name("fastdrive_ros/msg/Trajectory") == "fastdrive_ros::msg::dds_::Trajectory_"
    for bad in ("/a//b", "/a/", "/1abc", "~x", "/a b"):
        with pytest.raises(ValueError, match="invalid ROS topic"):
            resolve_topic(bad, node_name="n")
    with pytest.raises(ValueError, match="node name"):
        resolve_topic("/a", node_name="bad-name")
    with pytest.raises(ValueError, match="namespace"):
        resolve_topic("/a", node_name="n", namespace="car")
    with pytest.raises(ValueError, match="pkg/msg/Name"):
        dds_type_name("sensor_msgs/CompressedImage")


def test_qos_profiles_follow_ros2() -> None:
    assert PROFILES["default"] == QosProfile(reliable=True, depth=10, transient_local=False)
    assert PROFILES["sensor_data"] == QosProfile(reliable=False, depth=5, transient_local=False)
    assert PROFILES["tf_static"].transient_local and PROFILES["tf_static"].reliable
    assert qos_profile("tf") is PROFILES["tf"]
    custom = QosProfile(reliable=False, depth=100)
    assert qos_profile(custom) is custom
    with pytest.raises(ValueError, match="unknown QoS profile"):
        qos_profile("fast")
    with pytest.raises(ValueError, match="depth"):
        QosProfile(depth=0)


def test_cyclone_qos_matches_rmw_cyclonedds() -> None:
    pytest.importorskip("cyclonedds")
    from cyclonedds.qos import Policy

    from fastdrive_ros.transport.dds.qos import cyclone_qos

    qos = cyclone_qos(PROFILES["tf_static"], user_data=b"typehash=RIHS01_00;")
    assert qos[Policy.History] == Policy.History.KeepLast(1)
    assert qos[Policy.Durability] == Policy.Durability.TransientLocal
    assert qos[Policy.DurabilityService].history == Policy.History.KeepLast(1)
    assert qos[Policy.Userdata].data == b"typehash=RIHS01_00;"
    assert qos[Policy.DataRepresentation].use_cdrv0_representation  # XCDR1 only
    sensor = cyclone_qos(PROFILES["sensor_data"])
    assert sensor[Policy.Reliability] == Policy.Reliability.BestEffort
    assert sensor[Policy.Durability] == Policy.Durability.Volatile
    assert sensor[Policy.History] == Policy.History.KeepLast(5)


def test_peer_refuses_non_loopback_under_pytest() -> None:
    pytest.importorskip("cyclonedds")
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    lan = CycloneConfig.network(interface="192.168.1.20", peers=("192.168.1.7",))
    with pytest.raises(RuntimeError, match="non-loopback"):
        RosDdsPeer(config=lan)


def test_peer_refuses_outside_the_namespace_under_pytest(monkeypatch) -> None:
    pytest.importorskip("cyclonedds")
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    monkeypatch.setenv("FASTDRIVE_NETNS", "unavailable")
    with pytest.raises(RuntimeError, match="netns-run"):
        RosDdsPeer()


def test_peer_validates_arguments() -> None:
    pytest.importorskip("cyclonedds")
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    with pytest.raises(ValueError, match="domain id"):
        RosDdsPeer(domain_id=300)
    with pytest.raises(ValueError, match="node name"):
        RosDdsPeer(node_name="fast drive")
    with pytest.raises(ValueError, match="ros_distro"):
        RosDdsPeer(ros_distro="rolling")
    with pytest.raises(TypeError, match="CycloneConfig"):
        RosDdsPeer(config="<CycloneDDS/>")


def test_wire_commands_reject_bad_options_before_joining_the_wire(tmp_path) -> None:
    import typer
    from typer.testing import CliRunner

    from fastdrive_ros.transport.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    cases = [
        (["drive", "--transport", "zenoh"], "use dds or rclpy"),
        (["drive", "--set", "model_dir"], "--set expects key=value"),
        (["drive", "--ros-distro", "foxy"], "use humble or jazzy"),
        (["play", str(tmp_path), "--ros-distro", "foxy"], "use humble or jazzy"),
        (["play", str(tmp_path), "--interface", "10.1.2.3"], "--peer"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.replace("│", " ").split()), args
