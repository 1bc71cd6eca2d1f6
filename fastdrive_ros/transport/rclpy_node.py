"""The genuine ROS 2 node (rclpy): a thin shell over NodeCore and the frame pipeline.

Parameters are declared from node_params.PARAMS with descriptors (description, range, choices,
read-only), cameras and odometry are subscribed with sensor-data QoS in a reentrant callback
group (callbacks only store messages), and a timer in its own group plans the newest complete
frame, so a MultiThreadedExecutor keeps receiving while the model runs. Stamps come from the
camera headers and "now" from the node clock, so `use_sim_time` makes bag replay consistent.

rclpy cannot be installed on our development machines: this module imports it lazily, and the
logic it relies on (NodeCore, the pipeline, parameter validation) is tested without it.
"""

from __future__ import annotations

import array
import logging
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from fastdrive_ros.pipeline.clock import Clock
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.transport.node_core import NodeCore
from fastdrive_ros.transport.node_params import (
    NODE_NAME,
    PARAMS,
    NodeParams,
    descriptor_fields,
    validate_params,
)

LOG = logging.getLogger("fastdrive_ros.node")


def require_rclpy() -> Any:
    """`import rclpy`, or an ImportError that says how to get it (or how to do without)."""
    try:
        import rclpy
    except ImportError as exc:
        raise ImportError(
            "rclpy is not importable: source your ROS 2 installation first (e.g. `source "
            "/opt/ros/humble/setup.bash`, then `colcon build` and `source install/setup.bash` "
            "for fastdrive_ros), or run the same node without ROS 2 over Cyclone DDS: "
            "`fastdrive drive --transport dds` (pip install 'fastdrive_ros[dds]')"
        ) from exc
    return rclpy


class RclpyFactory:
    """rclpy message classes by type name (sensor_msgs/msg/Image, fastdrive_ros/msg/...)."""

    def __init__(self) -> None:
        from rosidl_runtime_py.utilities import get_message

        self._get = get_message
        self._classes: dict[str, type] = {}

    def new(self, msgtype: str, **fields: Any) -> Any:
        cls = self._classes.get(msgtype)
        if cls is None:
            cls = self._classes[msgtype] = self._get(msgtype)
        return cls(**fields)

    def uint8_array(self, data: np.ndarray) -> Any:
        return array.array("B", np.ascontiguousarray(data, dtype=np.uint8).tobytes())

    def byte(self, value: int) -> Any:
        return bytes([int(value)])


class NodeClock:
    """The pipeline's Clock over an rclpy clock (ROS time, or /clock under use_sim_time)."""

    def __init__(self, ros_clock: Any) -> None:
        self._clock = ros_clock

    def now_ns(self) -> int:
        return int(self._clock.now().nanoseconds)


def _descriptor(spec_fields: dict[str, Any]) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    fields = dict(spec_fields)
    if "floating_point_range" in fields:
        low, high, step = fields.pop("floating_point_range")
        fields["floating_point_range"] = [
            FloatingPointRange(from_value=low, to_value=high, step=step)
        ]
    if "integer_range" in fields:
        low, high, step = fields.pop("integer_range")
        fields["integer_range"] = [IntegerRange(from_value=low, to_value=high, step=step)]
    return ParameterDescriptor(**fields)


def make_node(
    *,
    node_name: str = NODE_NAME,
    namespace: str = "",
    overrides: dict[str, Any] | None = None,
    build: Callable[[NodeParams, Clock], FramePipeline] | None = None,
) -> Any:
    """Create the rclpy node (rclpy.init must have run). `build` makes the pipeline (tests)."""
    require_rclpy()
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, qos_profile_sensor_data

    from fastdrive_ros.pipeline.factory import build_pipeline

    initial = [Parameter(k, value=v) for k, v in (overrides or {}).items()]

    class FastdriveNode(Node):
        """fastdrive: six cameras + odometry in, trajectory, path, diagnostics out."""

        def __init__(self) -> None:
            super().__init__(node_name, namespace=namespace, parameter_overrides=initial)
            for spec in PARAMS:
                self.declare_parameter(
                    spec.name, spec.default, _descriptor(descriptor_fields(spec))
                )
            values = {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}
            self.params = validate_params(values)  # ParamError lists every bad value
            clock = NodeClock(self.get_clock())
            if build is not None:
                self.pipeline = build(self.params, clock)
            else:
                self.pipeline = build_pipeline(self.params.pipeline_params(), clock=clock)
            self.core = NodeCore(
                params=self.params,
                pipeline=self.pipeline,
                factory=RclpyFactory(),
                node_name=self.get_name(),
            )
            inputs = ReentrantCallbackGroup()
            qos = {"sensor_data": qos_profile_sensor_data, "default": QoSProfile(depth=10)}
            self._subs = [
                self.create_subscription(
                    self._msg_class(s.msgtype),
                    s.topic,
                    s.handler,
                    qos[s.qos],
                    callback_group=inputs,
                )
                for s in self.core.subscriptions()
            ]
            self._pubs = {
                p.key: self.create_publisher(self._msg_class(p.msgtype), p.topic, qos[p.qos])
                for p in self.core.publications()
            }
            self._step_timer = self.create_timer(
                self.params.step_period_ms / 1e3,
                self._on_step,
                callback_group=MutuallyExclusiveCallbackGroup(),
            )
            self._diag_timer = self.create_timer(
                self.params.diagnostics_period_ms / 1e3,
                self._on_diagnostics,
                callback_group=MutuallyExclusiveCallbackGroup(),
            )
            self._published_since_diag = False
            self.get_logger().info(
                f"planning with {self.pipeline.info.as_values()}; publishing "
                f"{sorted(pub.topic_name for pub in self._pubs.values())}"
            )

        def _msg_class(self, msgtype: str) -> type:
            from rosidl_runtime_py.utilities import get_message

            return get_message(msgtype)

        def _on_step(self) -> None:
            output = self.pipeline.step()
            if output is None:
                return
            now = self.pipeline.clock.now_ns()
            for key, msg in self.core.outputs(output, now):
                self._pubs[key].publish(msg)
            self._published_since_diag = True
            level = output.health.level
            if level >= 1:
                log = self.get_logger().warning if level == 1 else self.get_logger().error
                log(output.health.message, throttle_duration_sec=5.0)

        def _on_diagnostics(self) -> None:
            if self._published_since_diag:  # planned frames carry their own diagnostics
                self._published_since_diag = False
                return
            report = self.pipeline.health()
            key, msg = self.core.diagnostics(report, self.pipeline.clock.now_ns())
            self._pubs[key].publish(msg)

        def destroy_node(self) -> None:
            self.pipeline.close()
            super().destroy_node()

    return FastdriveNode()


def main(
    args: list[str] | None = None,
    *,
    params: NodeParams | None = None,
    node_name: str = NODE_NAME,
    namespace: str = "",
) -> int:
    """Run the node until shutdown (`ros2 run`, launch, `fastdrive drive --transport rclpy`).

    `params` (from `fastdrive drive`) become parameter overrides; returns the exit status.
    """
    rclpy = require_rclpy()
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.transport.node_params import ParamError

    rclpy.init(args=args if args is not None else sys.argv)
    overrides = dict(params.values) if params is not None else None
    try:
        node = make_node(node_name=node_name, namespace=namespace, overrides=overrides)
    except (RuntimeSetupError, ParamError) as exc:
        LOG.error("fastdrive node cannot start: %s", exc)
        print(f"fastdrive_node: cannot start: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
