"""The ROS 2 graph announcement (`ros_discovery_info`), so ROS tools see the peer as a node.

DDS discovery alone lets `ros2 topic list/echo` see our topics; `ros2 node list` and `ros2 node
info` come from rmw_dds_common's ParticipantEntitiesInfo, which every rmw participant publishes on
the DDS topic `ros_discovery_info` (reliable, keep last 1, transient local): the participant's gid
and, per node, the gids of its readers and writers. A gid is the 16-byte DDS GUID, zero-padded to
rmw_dds_common/msg/Gid (24 bytes on Humble, 16 from Iron on).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from fastdrive_ros.transport.dds._lib import cyclonedds
from fastdrive_ros.transport.dds.idl import WireTypes
from fastdrive_ros.transport.dds.qos import PROFILES, cyclone_qos, typehash_user_data

GRAPH_TOPIC = "ros_discovery_info"
INFO_TYPE = "rmw_dds_common/msg/ParticipantEntitiesInfo"
GID_TYPE = "rmw_dds_common/msg/Gid"


class GraphAnnouncer:
    """Keeps one node's readers and writers and republishes the participant's entities info."""

    def __init__(
        self, *, participant: Any, wire_types: WireTypes, node_name: str, namespace: str
    ) -> None:
        dds = cyclonedds()
        store = wire_types.store
        self._store = store
        self._gid_size = store.fielddefs[GID_TYPE][1][0][1][1][1]
        self._wire = wire_types.get(INFO_TYPE)
        self._participant_gid = self._gid(participant.guid.bytes)
        self._node_name = node_name
        self._namespace = namespace
        self._readers: list[bytes] = []
        self._writers: list[bytes] = []
        self._present = True
        self._lock = threading.Lock()
        user_data = typehash_user_data(store, INFO_TYPE)
        self._topic = dds.topic.Topic(participant, GRAPH_TOPIC, self._wire.idl_class)
        self._writer = dds.pub.DataWriter(
            participant, self._topic, qos=cyclone_qos(PROFILES["graph"], user_data=user_data)
        )
        self._publish()

    @property
    def gid_size(self) -> int:
        return self._gid_size

    def _gid(self, guid: bytes) -> Any:
        data = guid[: self._gid_size].ljust(self._gid_size, b"\0")
        return self._store.types[GID_TYPE](data=np.frombuffer(data, dtype=np.uint8))

    def message(self) -> Any:
        """The current ParticipantEntitiesInfo (rosbags message)."""
        store = self._store
        node_info = store.types["rmw_dds_common/msg/NodeEntitiesInfo"]
        nodes = []
        if self._present:
            nodes.append(
                node_info(
                    node_namespace=self._namespace,
                    node_name=self._node_name,
                    reader_gid_seq=[self._gid(g) for g in self._readers],
                    writer_gid_seq=[self._gid(g) for g in self._writers],
                )
            )
        return store.types[INFO_TYPE](gid=self._participant_gid, node_entities_info_seq=nodes)

    def _publish(self) -> None:
        self._writer.write(self._wire.to_idl(self.message()))

    def update(
        self, *, reader: bytes | None = None, writer: bytes | None = None, add: bool
    ) -> None:
        """Add or remove one reader or writer GUID of the node and republish."""
        with self._lock:
            for guid, entities in ((reader, self._readers), (writer, self._writers)):
                if guid is None:
                    continue
                if add:
                    entities.append(guid)
                elif guid in entities:
                    entities.remove(guid)
            self._publish()

    def close(self) -> None:
        """Announce that the node is gone (as rmw does when a node ends), then drop the writer."""
        with self._lock:
            self._present = False
            self._publish()
            self._writer.__del__()
            self._topic.__del__()
