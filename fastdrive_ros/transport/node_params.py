"""The node's parameters: one schema for the rclpy node, the DDS node and config/drive.yaml.

Each parameter has a type, default, description and range or choices; the rclpy node declares
them with ParameterDescriptors built from this table, the DDS node and `fastdrive replay` read
the same YAML (ros2 params format) through `load_params_yaml`, and `render_params_yaml()` writes
config/drive.yaml from it (a test keeps the file in step). Validation collects every problem and
raises one `ParamError` listing them. Parameters are read once at start (read-only at run time:
change the YAML or the launch arguments and restart the node).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.pipeline.config import MISSING_CAMERA_POLICIES, PipelineConfig
from fastdrive_ros.pipeline.factory import PipelineParams

NODE_NAME = "fastdrive"
ParamType = Literal["string", "integer", "double", "bool", "string_array"]
SELECTORS = ("reconpruner", "fastv", "sparsevlm", "divprune", "vispruner", "random", "none")
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


class ParamError(ValueError):
    """One or more parameters are invalid; the message lists each with what is allowed."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, type, default, description and allowed values."""

    name: str
    type: ParamType
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> str:
        """'' if `value` is allowed, else why not."""
        kinds = {"string": str, "integer": int, "double": (int, float), "bool": bool}
        if self.type == "string_array":
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                return f"must be a list of strings, got {value!r}"
        elif isinstance(value, bool) and self.type != "bool":
            return f"must be a {self.type}, got the boolean {value!r}"
        elif not isinstance(value, kinds[self.type]):
            return f"must be a {self.type}, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {list(self.choices)}, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum}, got {value!r}"
        return ""


def _topics(suffix: str) -> list[str]:
    return [f"/{name}/{suffix}" for name in CAMERA_NAMES]


_D = PipelineConfig()
PARAMS: tuple[ParamSpec, ...] = (
    # --- model -------------------------------------------------------------------------------
    ParamSpec(
        "model_dir",
        "string",
        "",
        "VLA bundle folder (config.json + safetensors); empty ="
        " the embedded default model shipped with the package (models/default)",
    ),
    ParamSpec(
        "backend",
        "string",
        "auto",
        "encoder+pruner runtime; auto = the fastest that works"
        " here (tensorrt > onnxruntime GPU > onnxruntime CPU > torch), reason logged",
        choices=BACKENDS,
    ),
    ParamSpec("pruner", "string", "reconpruner", "visual-token selector", choices=SELECTORS),
    ParamSpec(
        "prune_ratio",
        "double",
        0.5,
        "fraction of visual tokens DROPPED (the paper's p);"
        " keep ratio = 1 - prune_ratio; 0 keeps every token",
        minimum=0.0,
        maximum=0.99,
    ),
    ParamSpec(
        "device",
        "string",
        "auto",
        "torch device for preprocessing and the planner: auto"
        " (cuda if available), cpu, cuda, cuda:N",
    ),
    ParamSpec(
        "torch_threads",
        "integer",
        0,
        "CPU threads for torch (0 = torch's default)",
        minimum=0,
        maximum=256,
    ),
    ParamSpec(
        "max_new_tokens",
        "integer",
        _D.max_new_tokens,
        "planner budget for a text answer",
        minimum=1,
        maximum=4096,
    ),
    # --- inputs ------------------------------------------------------------------------------
    ParamSpec(
        "camera_names",
        "string_array",
        list(CAMERA_NAMES),
        "cameras in the model's order;"
        " the first anchors synchronisation (must match the model's cameras)",
    ),
    ParamSpec(
        "camera_topics",
        "string_array",
        _topics("image_rect_compressed"),
        "one topic per camera_names entry, same order",
    ),
    ParamSpec(
        "camera_transport",
        "string",
        "compressed",
        "compressed = sensor_msgs/CompressedImage (jpeg/png), raw = sensor_msgs/Image",
        choices=("compressed", "raw"),
    ),
    ParamSpec("odom_topic", "string", "/odom", "nav_msgs/Odometry of the ego car (ego history)"),
    ParamSpec(
        "command_topic",
        "string",
        "",
        "std_msgs/String with left/right/straight; empty ="
        " no command input (default_command is used)",
    ),
    ParamSpec(
        "default_command",
        "string",
        _D.default_command,
        "driving command until one arrives",
        choices=("left", "right", "straight"),
    ),
    # --- sync and faults ---------------------------------------------------------------------
    ParamSpec(
        "sync_tolerance_ms",
        "double",
        _D.sync_tolerance_ms,
        "max |camera stamp - front stamp| for a camera to join a frame",
        minimum=1.0,
        maximum=1000.0,
    ),
    ParamSpec(
        "camera_timeout_ms",
        "double",
        _D.camera_timeout_ms,
        "how long a frame waits for a late camera before missing_camera applies",
        minimum=0.0,
        maximum=5000.0,
    ),
    ParamSpec(
        "missing_camera",
        "string",
        _D.missing_camera,
        "policy for a missing, late or bad"
        " camera: reuse_last (last good image if younger than reuse_max_age_ms, else"
        " black), black, or skip (drop the frame)",
        choices=MISSING_CAMERA_POLICIES,
    ),
    ParamSpec(
        "reuse_max_age_ms",
        "double",
        _D.reuse_max_age_ms,
        "oldest image reuse_last may use",
        minimum=0.0,
        maximum=10000.0,
    ),
    ParamSpec(
        "camera_rate_hz",
        "double",
        12.0,
        "nominal camera rate; processing slower than one period raises WARN",
        minimum=0.1,
        maximum=1000.0,
    ),
    ParamSpec(
        "stale_after_ms",
        "double",
        _D.stale_after_ms,
        "no plan for this long -> STALE",
        minimum=1.0,
        maximum=600000.0,
    ),
    ParamSpec(
        "max_image_bytes",
        "integer",
        _D.max_image_bytes,
        "larger images are rejected unread",
        minimum=1,
        maximum=1 << 30,
    ),
    ParamSpec(
        "input_width",
        "integer",
        0,
        "expected camera width in px (0 = any, but every camera must match the front camera)",
        minimum=0,
        maximum=16384,
    ),
    ParamSpec(
        "input_height",
        "integer",
        0,
        "expected camera height in px (0 = any)",
        minimum=0,
        maximum=16384,
    ),
    ParamSpec(
        "jump_back_ms",
        "double",
        _D.jump_back_ms,
        "a camera or odometry stamp this much"
        " older than the previous one resets sync and ego history (bag loop)",
        minimum=1.0,
        maximum=3.6e6,
    ),
    ParamSpec(
        "jump_forward_ms",
        "double",
        _D.jump_forward_ms,
        "a stamp this much newer than the previous one resets too",
        minimum=1.0,
        maximum=3.6e6,
    ),
    ParamSpec(
        "wheelbase_m",
        "double",
        _D.wheelbase_m,
        "for the steering estimate from yaw rate and speed (nuScenes Renault Zoe: 2.588)",
        minimum=0.5,
        maximum=20.0,
    ),
    ParamSpec(
        "error_after_failures",
        "integer",
        _D.error_after_failures,
        "consecutive failed frames that raise ERROR",
        minimum=1,
        maximum=1000,
    ),
    # --- outputs -----------------------------------------------------------------------------
    ParamSpec("frame_id", "string", "base_link", "frame of the trajectory and path (ego body)"),
    ParamSpec(
        "publish_debug",
        "bool",
        True,
        "publish ~/debug/<stage>_ms (std_msgs/Float64) and"
        " ~/debug/latency (fastdrive_ros/FrameLatency)",
    ),
    ParamSpec(
        "publish_overlay",
        "bool",
        False,
        "publish ~/debug/kept_tokens, an image of the six"
        " cameras with pruned tokens darkened (costs a copy of each frame)",
    ),
    ParamSpec(
        "overlay_width",
        "integer",
        960,
        "width of the overlay mosaic in px",
        minimum=64,
        maximum=8192,
    ),
    ParamSpec(
        "step_period_ms",
        "double",
        5.0,
        "how often the node looks for a complete frame",
        minimum=0.5,
        maximum=1000.0,
    ),
    ParamSpec(
        "diagnostics_period_ms",
        "double",
        1000.0,
        "/diagnostics period when idle (every planned frame also publishes one)",
        minimum=10.0,
        maximum=60000.0,
    ),
)
PARAMS_BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}


def descriptor_fields(spec: ParamSpec) -> dict[str, Any]:
    """rcl_interfaces/ParameterDescriptor fields for `spec` (the rclpy node builds it from this).

    Ranges become floating_point_range / integer_range (step 0 = continuous); choices go into
    additional_constraints, which ROS tools show to the user; doubles take dynamic typing so an
    integer in a YAML file is not refused (validate_params converts it).
    """
    fields: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "read_only": True,
        "additional_constraints": "",
    }
    if spec.type == "double":
        fields["dynamic_typing"] = True  # accept `60` for 60.0 in YAML; validate_params converts
    if spec.choices:
        fields["additional_constraints"] = "one of: " + ", ".join(spec.choices)
    if spec.minimum is not None and spec.maximum is not None:
        key = "integer_range" if spec.type == "integer" else "floating_point_range"
        if spec.type == "integer":
            fields[key] = (int(spec.minimum), int(spec.maximum), 1)
        else:
            fields[key] = (float(spec.minimum), float(spec.maximum), 0.0)
    return fields


@dataclass(frozen=True)
class NodeParams:
    """Validated parameter values (attribute per ParamSpec name)."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def pipeline_config(self) -> PipelineConfig:
        v = self.values
        return PipelineConfig(
            camera_names=tuple(v["camera_names"]),
            sync_tolerance_ms=v["sync_tolerance_ms"],
            camera_timeout_ms=v["camera_timeout_ms"],
            missing_camera=v["missing_camera"],
            reuse_max_age_ms=v["reuse_max_age_ms"],
            camera_period_ms=1000.0 / v["camera_rate_hz"],
            stale_after_ms=v["stale_after_ms"],
            max_image_bytes=v["max_image_bytes"],
            input_width=v["input_width"],
            input_height=v["input_height"],
            jump_back_ms=v["jump_back_ms"],
            jump_forward_ms=v["jump_forward_ms"],
            wheelbase_m=v["wheelbase_m"],
            error_after_failures=v["error_after_failures"],
            default_command=v["default_command"],
            max_new_tokens=v["max_new_tokens"],
        )

    def pipeline_params(self, **overrides: Any) -> PipelineParams:
        """What build_pipeline needs, from these parameters."""
        v = self.values
        fields: dict[str, Any] = dict(
            model_dir=v["model_dir"],
            backend=v["backend"],
            pruner=v["pruner"],
            prune_ratio=v["prune_ratio"],
            device=v["device"],
            torch_threads=v["torch_threads"],
            config=self.pipeline_config(),
            keep_images=v["publish_overlay"],
        )
        fields.update(overrides)
        return PipelineParams(**fields)

    def camera_topic_map(self) -> dict[str, str]:
        """Topic of each camera, by camera name."""
        return dict(zip(self.values["camera_names"], self.values["camera_topics"]))


def validate_params(overrides: Mapping[str, Any] | None = None) -> NodeParams:
    """Defaults updated with `overrides`, checked; ParamError lists every problem."""
    values = {p.name: p.default for p in PARAMS}
    problems: list[str] = []
    for name, value in (overrides or {}).items():
        spec = PARAMS_BY_NAME.get(name)
        if spec is None:
            if name in ("use_sim_time",):  # handled by ROS itself
                continue
            problems.append(f"unknown parameter {name!r} (known: {', '.join(PARAMS_BY_NAME)})")
            continue
        if spec.type == "double" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, tuple):
            value = list(value)
        reason = spec.check(value)
        if reason:
            problems.append(f"{name} {reason}")
        else:
            values[name] = value
    if len(values["camera_topics"]) != len(values["camera_names"]):
        problems.append(
            f"camera_topics has {len(values['camera_topics'])} entries but camera_names has "
            f"{len(values['camera_names'])}: give one topic per camera"
        )
    if not problems:
        try:
            NodeParams(values).pipeline_config()
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ParamError("invalid node parameters:\n  - " + "\n  - ".join(problems))
    return NodeParams(values)


def load_params_yaml(path: str | Path, *, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The `ros__parameters` of `node_name` (or of `/**`) from a ros2 params YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"params file {path} does not exist (pass --params config/drive.yaml)")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"params file {path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ParamError(f"params file {path}: expected a mapping of node names at the top")
    merged: dict[str, Any] = {}
    keys = ("/**", node_name, f"/{node_name}")
    found = False
    for key, section in document.items():
        if key in keys or str(key).endswith(f"/{node_name}"):
            if not isinstance(section, dict) or "ros__parameters" not in section:
                raise ParamError(f"params file {path}: {key!r} has no ros__parameters mapping")
            merged.update(section["ros__parameters"] or {})
            found = True
    if not found:
        raise ParamError(
            f"params file {path} has no section for node {node_name!r} (expected a top-level "
            f"'{node_name}:' or '/**:' with 'ros__parameters:')"
        )
    return merged


def render_params_yaml(*, node_name: str = "/**") -> str:
    """config/drive.yaml: every parameter at its default, its description as a comment.

    The section is `/**` (any node name and namespace, so launch's node_name/namespace
    arguments need no edit here); give a node name for a file shared by several nodes.
    """
    lines = [
        "# Parameters of the fastdrive node (ros2 params format). Generated from",
        "# fastdrive_ros/transport/node_params.py (the single source of truth); regenerate with",
        "# `python -m fastdrive_ros.transport.node_params > config/drive.yaml`.",
        "# '/**' applies to the node whatever its name and namespace.",
        f"{yaml.safe_dump(node_name).splitlines()[0]}:",
        "  ros__parameters:",
    ]
    for spec in PARAMS:
        allowed = ""
        if spec.choices:
            allowed = f" [{' | '.join(spec.choices)}]"
        elif spec.minimum is not None or spec.maximum is not None:
            allowed = f" [{spec.minimum:g} .. {spec.maximum:g}]"
        text = f"{spec.description}{allowed}"
        lines.extend(textwrap.wrap(text, 95, initial_indent="    # ", subsequent_indent="    # "))
        dumped = yaml.safe_dump({spec.name: spec.default}, default_flow_style=False, width=1000)
        lines.extend("    " + line for line in dumped.strip().splitlines())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_params_yaml(), end="")
