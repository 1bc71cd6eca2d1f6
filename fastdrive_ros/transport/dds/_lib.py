"""Lazy access to cyclonedds, with an error that names the pip extra to install."""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = "pip install 'fastdrive_ros[dds]' (cyclonedds==11.0.1)"


def cyclonedds() -> ModuleType:
    """Import cyclonedds (and the submodules we use), or explain how to install it."""
    try:
        import cyclonedds
        import cyclonedds.core
        import cyclonedds.domain
        import cyclonedds.idl
        import cyclonedds.idl.types
        import cyclonedds.pub
        import cyclonedds.qos
        import cyclonedds.sub
        import cyclonedds.topic
        import cyclonedds.util
    except ImportError as exc:
        raise ImportError(
            f"the ROS 2 wire peer over Cyclone DDS needs the cyclonedds package: {INSTALL_HINT}"
        ) from exc
    return cyclonedds
