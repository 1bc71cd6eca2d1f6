"""The genuine ROS 2 node (rclpy): a thin shell over NodeCore and the frame pipeline.

Parameters are declared from node_params.PARAMS with descriptors (description, range, choices,
read-only), cameras and odometry are subscribed with sensor-data QoS in a reentrant callback
group (callbacks only store messages), and a timer in its own group plans the newest complete
frame, so a MultiThreadedExecutor keeps receiving while the model runs. Stamps come from the
camera headers and "now" from the node clock, so `use_sim_time` makes bag replay consistent.

rclpy is imported lazily: the logic the node relies on (NodeCore, the pipeline, parameter
validation) is tested without ROS; `make ros2-test` runs this node under real ROS 2.

Shutdown: rclpy's own signal handlers are off; SIGINT/SIGTERM (or `duration_s`) set a flag that
the spin loop checks, the executor then finishes its running callbacks, and only then is the node
destroyed. A second SIGINT (a terminal sends one to `ros2 launch` and its node alike) changes
nothing, and no callback can publish on a destroyed publisher.
"""

from __future__ import annotations

import array
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastdrive_ros.pipeline.clock import Clock, SteadyClock
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
TRAJECTORY_TYPE = "fastdrive_ros/msg/Trajectory"


class MessagesMissingError(RuntimeError):
    """fastdrive_ros's messages were not generated for rclpy (no colcon build)."""


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


def require_messages() -> None:
    """Fail fast, before the model loads, when rclpy cannot use fastdrive_ros/msg/Trajectory."""
    try:
        from rosidl_runtime_py.utilities import get_message

        cls = get_message(TRAJECTORY_TYPE)
        cls.__class__.__import_type_support__()  # the compiled typesupport, not only the .py
    except Exception as exc:
        raise MessagesMissingError(
            f"the fastdrive_ros messages are not built for rclpy ({type(exc).__name__}: {exc}); "
            "build the package with colcon (`make ros2` in the repo, or `colcon build "
            "--packages-select fastdrive_ros` in a workspace) and source it (`source "
            "scripts/ros2-env.sh` or `source install/setup.bash`); a pip install cannot "
            "provide them"
        ) from exc


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
    require_messages()
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
    from rclpy.clock import Clock as RosClock
    from rclpy.clock import ClockType
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, qos_profile_sensor_data

    from fastdrive_ros.pipeline.factory import build_pipeline
    from fastdrive_ros.transport.ros_logging import route_to_ros, unroute

    initial = [Parameter(k, value=v) for k, v in (overrides or {}).items()]

    class FastdriveNode(Node):
        """fastdrive: six cameras + odometry in, trajectory, path, diagnostics out."""

        def __init__(self) -> None:
            super().__init__(node_name, namespace=namespace, parameter_overrides=initial)
            # Model loading, backend choice and pipeline warnings go to the ROS log and /rosout.
            self._log_handler = route_to_ros(self.get_logger())
            for spec in PARAMS:
                self.declare_parameter(
                    spec.name, spec.default, _descriptor(descriptor_fields(spec))
                )
            values = {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}
            self.params = validate_params(values)  # ParamError lists every bad value
            clock = NodeClock(self.get_clock())
            if build is not None:
                self.pipeline = build(self.params, clock)
                self.pipeline.health_clock = SteadyClock()
            else:
                self.pipeline = build_pipeline(
                    self.params.pipeline_params(), clock=clock, health_clock=SteadyClock()
                )
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
            # Wall (steady) time, not the node clock: under use_sim_time a stopped /clock would
            # stop the diagnostics too, and the node could never be reported STALE.
            self._diag_timer = self.create_timer(
                self.params.diagnostics_period_ms / 1e3,
                self._on_diagnostics,
                callback_group=MutuallyExclusiveCallbackGroup(),
                clock=RosClock(clock_type=ClockType.STEADY_TIME),
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
            # One call site per severity: rclpy refuses a call site whose severity changes.
            if level == 1:
                self.get_logger().warning(output.health.message, throttle_duration_sec=5.0)
            elif level >= 2:
                self.get_logger().error(output.health.message, throttle_duration_sec=5.0)

        def _on_diagnostics(self) -> None:
            if self._published_since_diag:  # planned frames carry their own diagnostics
                self._published_since_diag = False
                return
            report = self.pipeline.health()
            key, msg = self.core.diagnostics(report, self.pipeline.clock.now_ns())
            self._pubs[key].publish(msg)

        def destroy_node(self) -> None:
            self.pipeline.close()
            unroute(self._log_handler)
            super().destroy_node()

    return FastdriveNode()


def spin_until_stopped(executor: Any, stop: threading.Event, duration_s: float | None) -> None:
    """Spin until `stop` is set or `duration_s` (wall seconds) passed; checks 10 times a second."""
    deadline = None if not duration_s else time.monotonic() + duration_s
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            LOG.info("stopping after --duration %.1f s", duration_s)
            return
        executor.spin_once(timeout_sec=0.1)


def drain(executor: Any, timeout_s: float = 10.0) -> None:
    """Wait until the callbacks already handed to the executor's thread pool have finished.

    rclpy's MultiThreadedExecutor.shutdown destroys its guard condition before it joins the pool
    (Kilted 9.1), so a callback task that starts in between fails with "cannot use Destroyable
    because destruction was requested" (seen in 1 of ~5 launches). `_futures` is rclpy's own
    list of submitted tasks; without it there is nothing to wait for.
    """
    futures = getattr(executor, "_futures", None) or []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(f.done() for f in list(futures)):
        time.sleep(0.01)


def main(
    args: list[str] | None = None,
    *,
    params: NodeParams | None = None,
    node_name: str = NODE_NAME,
    namespace: str = "",
    duration_s: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the node until SIGINT/SIGTERM, `stop` or `duration_s`; returns the exit status.

    Used by `ros2 run`, launch and `fastdrive drive --transport rclpy` (whose `params` become
    parameter overrides).
    """
    try:
        rclpy = require_rclpy()
        require_messages()  # before rclpy.init and the ~20 s model load
    except (ImportError, MessagesMissingError) as exc:
        print(f"fastdrive_node: cannot start: {exc}", file=sys.stderr)
        return 2
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from fastdrive_ros.runtime.errors import RuntimeSetupError
    from fastdrive_ros.transport.node_main import stop_on_signals
    from fastdrive_ros.transport.node_params import ParamError

    stop = stop or threading.Event()
    stop_on_signals(stop)  # repeats are harmless
    rclpy.init(
        args=args if args is not None else sys.argv,
        signal_handler_options=SignalHandlerOptions.NO,
    )
    overrides = dict(params.values) if params is not None else None
    try:
        node = make_node(node_name=node_name, namespace=namespace, overrides=overrides)
    except (RuntimeSetupError, ParamError, MessagesMissingError) as exc:
        print(f"fastdrive_node: cannot start: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        spin_until_stopped(executor, stop, duration_s)
    finally:
        drain(executor)
        executor.shutdown()  # joins the pool: nothing publishes after this
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
