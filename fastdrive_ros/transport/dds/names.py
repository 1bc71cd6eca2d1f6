"""ROS 2 names on the DDS wire, as rmw_cyclonedds writes them.

A ROS topic `/odom` is the DDS topic `rt/odom`; a message type `nav_msgs/msg/Odometry` is the DDS
type `nav_msgs::msg::dds_::Odometry_`. Node-private (`~/x`) and relative names resolve against the
node's namespace and name, as rcl does.
"""

from __future__ import annotations

import re

TOPIC_PREFIX = "rt"
_NODE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def validate_node_name(name: str) -> str:
    """A ROS node name: letters, digits and underscores, not starting with a digit."""
    if not isinstance(name, str) or not _NODE_RE.match(name):
        raise ValueError(f"invalid ROS node name {name!r}: use letters, digits and underscores")
    return name


def validate_namespace(namespace: str) -> str:
    """`/` or `/a/b`: absolute, no trailing slash, tokens like node names."""
    if namespace == "/":
        return namespace
    tokens = namespace.split("/")
    if not namespace.startswith("/") or not all(_TOKEN_RE.match(t) for t in tokens[1:]):
        raise ValueError(f"invalid ROS namespace {namespace!r}: expected '/' or '/a/b'")
    return namespace


def resolve_topic(topic: str, *, node_name: str, namespace: str = "/") -> str:
    """Fully qualified ROS topic name: `~/x` -> `/ns/node/x`, `x` -> `/ns/x`, `/x` kept."""
    validate_node_name(node_name)
    validate_namespace(namespace)
    base = "" if namespace == "/" else namespace
    if topic.startswith("~"):
        if topic != "~" and not topic.startswith("~/"):
            raise ValueError(f"invalid ROS topic {topic!r}: '~' must be followed by '/'")
        full = f"{base}/{node_name}{topic[1:]}"
    elif topic.startswith("/"):
        full = topic
    else:
        full = f"{base}/{topic}"
    tokens = full.split("/")[1:]
    if not tokens or not all(_TOKEN_RE.match(t) for t in tokens):
        raise ValueError(
            f"invalid ROS topic {topic!r} (resolved to {full!r}): tokens must be letters, digits "
            "and underscores, separated by single '/', with no trailing '/'"
        )
    return full


def dds_topic_name(topic: str, *, node_name: str, namespace: str = "/") -> str:
    """The DDS topic a ROS 2 node uses for `topic` (`/odom` -> `rt/odom`)."""
    return TOPIC_PREFIX + resolve_topic(topic, node_name=node_name, namespace=namespace)


def dds_type_name(msgtype: str) -> str:
    """`pkg/msg/Name` -> `pkg::msg::dds_::Name_` (the DDS type name of rosidl's IDL)."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"not a ROS message type name: {msgtype!r} (expected pkg/msg/Name)")
    return f"{parts[0]}::msg::dds_::{parts[2]}_"
