"""QoS profiles as ROS 2 defines them, turned into Cyclone DDS QoS the way rmw_cyclonedds does.

Reliability, history depth and durability are what decide whether a ROS 2 node on the wire matches
our endpoints: a best-effort writer never matches a reliable reader, and a late reader only gets
`/tf_static` if the writer is transient local.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from fastdrive_ros.transport.dds._lib import cyclonedds

ProfileName = Literal["default", "sensor_data", "tf", "tf_static", "tf_static_listener", "graph"]


@dataclass(frozen=True, kw_only=True)
class QosProfile:
    """The QoS policies ROS 2 exposes (history is always keep-last here).

    Attributes:
        reliable: reliable (retransmit, block when readers lag) vs best effort (drop).
        depth: keep-last history depth: samples a writer keeps, or a reader queues.
        transient_local: the writer keeps its last `depth` samples for readers that join later.
    """

    reliable: bool = True
    depth: int = 10
    transient_local: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 2**31 - 1:
            raise ValueError(f"QoS history depth must be >= 1, got {self.depth}")


# rclcpp / rclpy presets, and tf2_ros' own (StaticBroadcasterQoS depth 1, StaticListenerQoS 100,
# DynamicBroadcasterQoS / DynamicListenerQoS 100). "graph" is rmw's ros_discovery_info.
PROFILES: dict[str, QosProfile] = {
    "default": QosProfile(reliable=True, depth=10),
    "sensor_data": QosProfile(reliable=False, depth=5),
    "tf": QosProfile(reliable=True, depth=100),
    "tf_static": QosProfile(reliable=True, depth=1, transient_local=True),
    "tf_static_listener": QosProfile(reliable=True, depth=100, transient_local=True),
    "graph": QosProfile(reliable=True, depth=1, transient_local=True),
}

QosLike = Union[ProfileName, QosProfile]


def qos_profile(qos: QosLike) -> QosProfile:
    """A profile by name (see PROFILES) or the given QosProfile."""
    if isinstance(qos, QosProfile):
        return qos
    if qos not in PROFILES:
        raise ValueError(f"unknown QoS profile {qos!r}: use one of {sorted(PROFILES)}")
    return PROFILES[qos]


def typehash_user_data(store: Any, msgtype: str) -> bytes:
    """USER_DATA `typehash=RIHS01_...;` of an endpoint of `msgtype` (as Jazzy's rmw writes it).

    `store` is the rosbags Typestore whose definition of `msgtype` goes on the wire.
    """
    return f"typehash={store.hash_rihs01(msgtype)};".encode()


def cyclone_qos(profile: QosProfile, *, user_data: bytes = b"") -> Any:
    """Cyclone QoS for a reader or writer with `profile`, as rmw_cyclonedds builds it.

    rmw_cyclonedds: keep-last depth, reliable with infinite blocking time or best effort, volatile
    or transient local (with a durability service of the same history), automatic liveliness
    with an infinite lease, no autodispose, XCDR1 data representation (ROS 2 CDR), and Jazzy's
    `typehash=RIHS01_...;` in USER_DATA.
    """
    dds = cyclonedds()
    policy = dds.qos.Policy
    infinite = dds.util.duration(infinite=True)
    history = policy.History.KeepLast(profile.depth)
    policies = [
        history,
        policy.Reliability.Reliable(max_blocking_time=infinite)
        if profile.reliable
        else policy.Reliability.BestEffort,
        policy.Liveliness.Automatic(lease_duration=infinite),
        policy.WriterDataLifecycle(autodispose=False),
        policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    if profile.transient_local:
        policies += [
            policy.Durability.TransientLocal,
            policy.DurabilityService(
                cleanup_delay=0,
                history=history,
                max_samples=-1,
                max_instances=-1,
                max_samples_per_instance=-1,
            ),
        ]
    else:
        policies.append(policy.Durability.Volatile)
    if user_data:
        policies.append(policy.Userdata(data=user_data))
    return dds.qos.Qos(*policies)
