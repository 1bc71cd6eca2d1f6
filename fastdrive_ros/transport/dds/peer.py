"""RosDdsPeer: a ROS 2 node on the DDS wire without rclpy (Cyclone DDS, ROS 2 names/types/QoS).

ROS 2 nodes on the same network (any rmw; rmw_cyclonedds tested by byte parity) see its topics
with `ros2 topic list/echo` and its node with `ros2 node list`. Messages are rosbags dataclass
instances from `transport.ros_types.typestore()`, the same objects bags and replay use.

Threading: `publish` may be called from any thread. Every subscription callback of one peer runs
on that peer's single dispatch thread, one message at a time, in arrival order per topic; a slow
callback delays the others and, past the QoS depth, drops the oldest queued messages, so hand
heavy work to another thread. An exception in a callback is logged and counted, never fatal.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Literal

from rosbags.typesys import Stores, get_typestore

from fastdrive_ros.transport import ros_types
from fastdrive_ros.transport.dds._lib import cyclonedds
from fastdrive_ros.transport.dds.config import CycloneConfig
from fastdrive_ros.transport.dds.endpoints import RosPublisher, RosSubscription
from fastdrive_ros.transport.dds.graph import GraphAnnouncer
from fastdrive_ros.transport.dds.idl import WireType, WireTypes
from fastdrive_ros.transport.dds.names import (
    dds_topic_name,
    resolve_topic,
    validate_namespace,
    validate_node_name,
)
from fastdrive_ros.transport.dds.qos import (
    QosLike,
    QosProfile,
    cyclone_qos,
    qos_profile,
    typehash_user_data,
)
from fastdrive_ros.transport.dds.sockets import describe, udp_sockets

log = logging.getLogger(__name__)

RosDistro = Literal["humble", "jazzy", "kilted"]
ROS_DISTROS: tuple[str, ...] = ("humble", "jazzy", "kilted")
LOOPBACK = CycloneConfig.loopback()

# One Cyclone domain per domain id per process: peers in one process share it (same config).
_domains: dict[int, tuple[Any, str, int]] = {}
_domains_lock = threading.Lock()


def _acquire_domain(domain_id: int, xml: str) -> Any:
    dds = cyclonedds()
    with _domains_lock:
        if domain_id in _domains:
            domain, have_xml, refs = _domains[domain_id]
            if have_xml != xml:
                raise RuntimeError(
                    f"DDS domain {domain_id} is already open in this process with another "
                    "CycloneConfig; use the same config (or another domain id) for every peer"
                )
            _domains[domain_id] = (domain, xml, refs + 1)
            return domain
        domain = dds.domain.Domain(domain_id, xml)
        _domains[domain_id] = (domain, xml, 1)
        return domain


def _release_domain(domain_id: int) -> None:
    with _domains_lock:
        domain, xml, refs = _domains[domain_id]
        if refs > 1:
            _domains[domain_id] = (domain, xml, refs - 1)
            return
        del _domains[domain_id]
    domain.__del__()


def _check_network_safety(config: CycloneConfig) -> None:
    """Under pytest, refuse anything but loopback inside the namespace of scripts/netns-run."""
    if "PYTEST_CURRENT_TEST" not in os.environ:
        return
    if not config.is_loopback:
        raise RuntimeError(
            "refusing to start a DDS peer with a non-loopback CycloneConfig under pytest; "
            "use CycloneConfig.loopback()"
        )
    if os.environ.get("FASTDRIVE_NETNS") != "isolated":
        raise RuntimeError(
            "refusing to start a DDS peer under pytest outside the loopback-only network "
            "namespace: run the tests via `make test` (scripts/netns-run) and use the "
            "loopback_netns fixture"
        )


class RosDdsPeer:
    """One ROS 2 node (`node_name` in `namespace`) on one DDS domain; use as a context manager."""

    def __init__(
        self,
        *,
        domain_id: int = 0,
        config: CycloneConfig = LOOPBACK,
        node_name: str = "fastdrive",
        namespace: str = "/",
        ros_distro: RosDistro = "humble",
    ) -> None:
        if not isinstance(domain_id, int) or not 0 <= domain_id <= 232:
            raise ValueError(f"ROS domain id must be an int in 0..232, got {domain_id!r}")
        if not isinstance(config, CycloneConfig):
            raise TypeError(f"config must be a CycloneConfig, got {type(config).__name__}")
        if ros_distro not in ROS_DISTROS:
            raise ValueError(f"ros_distro must be one of {ROS_DISTROS}, got {ros_distro!r}")
        self._node_name = validate_node_name(node_name)
        self._namespace = validate_namespace(namespace)
        self._domain_id = domain_id
        self._config = config
        _check_network_safety(config)
        dds = cyclonedds()
        self._wire = WireTypes(store=ros_types.typestore())
        # rmw_dds_common's Gid changed size after Humble: announce with the matching definition
        # (Kilted kept Jazzy's).
        graph_store = (
            self._wire.store if ros_distro == "humble" else get_typestore(Stores.ROS2_JAZZY)
        )
        self._domain = _acquire_domain(domain_id, config.to_xml())
        self._closed = False
        self._topics: dict[str, tuple[Any, str]] = {}
        self._publishers: list[RosPublisher] = []
        self._subscriptions: list[RosSubscription] = []
        self._lock = threading.RLock()
        try:
            qos = dds.qos.Qos(dds.qos.Policy.Userdata(data=b"enclave=/;"))
            self._participant = dds.domain.DomainParticipant(domain_id, qos=qos)
            self._graph = GraphAnnouncer(
                participant=self._participant,
                wire_types=WireTypes(store=graph_store) if ros_distro != "humble" else self._wire,
                node_name=node_name,
                namespace=namespace,
            )
            self._waitset = dds.core.WaitSet(self._participant)
            self._wakeup = dds.core.GuardCondition(self._participant)
            self._waitset.attach(self._wakeup)
        except Exception:
            _release_domain(domain_id)
            raise
        self._thread = threading.Thread(
            target=self._dispatch, name=f"dds-peer-{node_name}", daemon=True
        )
        self._thread.start()
        # What Cyclone really bound, not what the configuration asked (see dds/sockets.py).
        log.info("%s on interface %s: %s", node_name, config.interface, describe(udp_sockets()))

    # -- properties ---------------------------------------------------------------------------

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def domain_id(self) -> int:
        return self._domain_id

    @property
    def config(self) -> CycloneConfig:
        return self._config

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def publishers(self) -> tuple[RosPublisher, ...]:
        return tuple(self._publishers)

    @property
    def subscriptions(self) -> tuple[RosSubscription, ...]:
        return tuple(self._subscriptions)

    def resolve(self, topic: str) -> str:
        """Fully qualified ROS name of `topic` for this node (`~/x` -> `/fastdrive/x`)."""
        return resolve_topic(topic, node_name=self._node_name, namespace=self._namespace)

    # -- endpoints ----------------------------------------------------------------------------

    def _topic(self, topic: str, msgtype: str) -> tuple[Any, str, Any]:
        """(DDS topic entity, DDS topic name, wire type), one topic entity per name."""
        dds = cyclonedds()
        msgtype = ros_types.full_name(msgtype)
        wire = self._wire.get(msgtype)
        name = dds_topic_name(topic, node_name=self._node_name, namespace=self._namespace)
        if name in self._topics:
            entity, have = self._topics[name]
            if have != msgtype:
                raise TypeError(f"topic {topic} already carries {have} here, not {msgtype}")
            return entity, name, wire
        entity = dds.topic.Topic(self._participant, name, wire.idl_class)
        self._topics[name] = (entity, msgtype)
        return entity, name, wire

    def _qos(self, profile: QosProfile, wire: WireType) -> Any:
        """Cyclone QoS of an endpoint, with the type hash ROS 2 Jazzy looks for."""
        return cyclone_qos(profile, user_data=typehash_user_data(self._wire.store, wire.msgtype))

    def publisher(self, topic: str, msgtype: str, qos: QosLike = "default") -> RosPublisher:
        """A publisher of `msgtype` (e.g. "sensor_msgs/msg/CompressedImage") on ROS `topic`."""
        dds = cyclonedds()
        profile = qos_profile(qos)
        with self._lock:
            self._check_open()
            entity, name, wire = self._topic(topic, msgtype)
            writer = dds.pub.DataWriter(self._participant, entity, qos=self._qos(profile, wire))
            pub = RosPublisher(
                writer=writer,
                wire=wire,
                store=self._wire.store,
                topic=self.resolve(topic),
                dds_topic=name,
                qos=profile,
            )
            self._publishers.append(pub)
            self._graph.update(writer=pub.guid, add=True)
        return pub

    def subscribe(
        self,
        topic: str,
        msgtype: str,
        callback: Callable[[Any], None],
        qos: QosLike = "default",
    ) -> RosSubscription:
        """Call `callback(msg)` (on the dispatch thread) for every `msgtype` message on `topic`."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        dds = cyclonedds()
        profile = qos_profile(qos)
        with self._lock:
            self._check_open()
            entity, name, wire = self._topic(topic, msgtype)
            reader = dds.sub.DataReader(self._participant, entity, qos=self._qos(profile, wire))
            state = dds.core
            mask = state.SampleState.Any | state.ViewState.Any | state.InstanceState.Any
            condition = dds.core.ReadCondition(reader, mask)
            sub = RosSubscription(
                reader=reader,
                condition=condition,
                wire=wire,
                store=self._wire.store,
                topic=self.resolve(topic),
                dds_topic=name,
                qos=profile,
                callback=callback,
            )
            self._subscriptions.append(sub)
            self._waitset.attach(condition)
            self._wakeup.set(True)
            self._graph.update(reader=sub.guid, add=True)
        return sub

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"DDS peer {self._node_name} is closed")

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        dds = cyclonedds()
        timeout = dds.util.duration(seconds=1)
        while not self._closed:
            try:
                self._waitset.wait(timeout)
                self._wakeup.take()
                for sub in tuple(self._subscriptions):
                    sub.drain()
            except Exception:
                if self._closed:
                    return
                log.exception("DDS peer %s: dispatch failed", self._node_name)

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop dispatching, leave the ROS graph and delete every DDS entity (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wakeup.set(True)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        try:
            self._graph.close()
            for sub in self._subscriptions:
                self._waitset.detach(sub.condition)
                sub._close()
            for pub in self._publishers:
                pub._close()
            for entity, _ in self._topics.values():
                entity.__del__()
            self._waitset.detach(self._wakeup)
            self._wakeup.__del__()
            self._waitset.__del__()
            self._participant.__del__()
        finally:
            _release_domain(self._domain_id)

    def __enter__(self) -> RosDdsPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"RosDdsPeer(node={self.resolve('~')}, domain={self._domain_id}, "
            f"publishers={len(self._publishers)}, subscriptions={len(self._subscriptions)}, "
            f"{state})"
        )
