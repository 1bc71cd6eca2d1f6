"""The fastdrive node on the ROS 2 DDS wire without rclpy (Cyclone DDS via RosDdsPeer).

Same topics, types and QoS as the rclpy node (both are shells over NodeCore): cameras and
odometry with sensor-data QoS in, `~/trajectory`, `~/path`, `/diagnostics`, `~/debug/...` out.
Subscription callbacks (the peer's dispatch thread) only store messages; a PipelineWorker thread
plans the newest complete frame and publishes. The node clock is the system clock: recorded bags
keep their stamps, so frame ages against old stamps are large (use `fastdrive replay` for bag
latency figures, or restamp at the source).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.types import HealthReport, PipelineOutput
from fastdrive_ros.pipeline.worker import PipelineWorker
from fastdrive_ros.transport.node_core import NodeCore
from fastdrive_ros.transport.node_messages import RosbagsFactory
from fastdrive_ros.transport.node_params import NodeParams

LOG = logging.getLogger("fastdrive_ros.node")


class DdsNode:
    """Wires a FramePipeline to a RosDdsPeer; `start()` / `stop()` or a context manager."""

    def __init__(self, *, params: NodeParams, pipeline: FramePipeline, peer: Any) -> None:
        self.peer = peer
        self.pipeline = pipeline
        self.core = NodeCore(
            params=params, pipeline=pipeline, factory=RosbagsFactory(), node_name=peer.node_name
        )
        self._publishers = {
            p.key: peer.publisher(p.topic, p.msgtype, qos=p.qos) for p in self.core.publications()
        }
        for sub in self.core.subscriptions():
            peer.subscribe(sub.topic, sub.msgtype, sub.handler, qos=sub.qos)
        self._worker = PipelineWorker(
            pipeline=pipeline,
            on_output=self._publish_output,
            on_health=self._publish_health,
            health_period_ms=params.diagnostics_period_ms,
        )
        self.published = 0
        self._lock = threading.Lock()

    def _publish_output(self, out: PipelineOutput) -> None:
        now = self.pipeline.clock.now_ns()
        for key, msg in self.core.outputs(out, now):
            self._publishers[key].publish(msg)
        with self._lock:
            self.published += 1

    def _publish_health(self, report: HealthReport) -> None:
        key, msg = self.core.diagnostics(report, self.pipeline.clock.now_ns())
        self._publishers[key].publish(msg)

    def topics(self) -> dict[str, str]:
        """Publication key -> fully qualified topic."""
        return {key: pub.topic for key, pub in self._publishers.items()}

    def start(self) -> DdsNode:
        self._worker.start()
        LOG.info("fastdrive DDS node %s up: %s", self.peer.resolve("~"), self.topics())
        return self

    def stop(self) -> None:
        self._worker.stop()

    def __enter__(self) -> DdsNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_dds_node(
    params: NodeParams,
    *,
    domain_id: int = 0,
    config: Any = None,
    node_name: str = "fastdrive",
    namespace: str = "/",
    ros_distro: str = "humble",
    duration_s: float | None = None,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Build the pipeline, join the wire, run until `stop` is set or `duration_s` passes.

    Returns the number of planned frames published. `ready` is set once the node subscribes
    and publishes (tests and supervisors wait on it).
    """
    from fastdrive_ros.pipeline.factory import build_pipeline
    from fastdrive_ros.transport.dds.config import CycloneConfig
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    pipeline = build_pipeline(params.pipeline_params())
    stop = stop or threading.Event()
    peer_config = config if config is not None else CycloneConfig.loopback()
    with (
        RosDdsPeer(
            domain_id=domain_id,
            config=peer_config,
            node_name=node_name,
            namespace=namespace,
            ros_distro=ros_distro,  # type: ignore[arg-type]
        ) as peer,
        DdsNode(params=params, pipeline=pipeline, peer=peer) as node,
    ):
        if ready is not None:
            ready.set()
        try:
            stop.wait(duration_s)
        except KeyboardInterrupt:
            LOG.info("interrupted")
        published = node.published
        LOG.info(
            "stopping after %d planned frames; counters %s",
            published,
            pipeline.counters.snapshot(),
        )
    pipeline.close()
    return published
