"""Starting the node outside `ros2 launch`: parameters from YAML + overrides, logging, signals.

Used by `fastdrive drive --transport dds|rclpy` and by scripts/fastdrive_node.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from fastdrive_ros.transport.node_params import (
    NODE_NAME,
    NodeParams,
    ParamError,
    load_params_yaml,
    validate_params,
)

PARAMS_FILE = "drive.yaml"


def default_params_file() -> Path | None:
    """config/drive.yaml of the checkout, or share/fastdrive_ros/config/drive.yaml installed."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / PARAMS_FILE]
    candidates.append(Path(sys.prefix) / "share" / "fastdrive_ros" / "config" / PARAMS_FILE)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "fastdrive_ros" / "config" / PARAMS_FILE)
    return next((c for c in candidates if c.is_file()), None)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """["key=value", ...] -> {key: YAML-typed value} (so 0.25 is a float, [a, b] a list)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ParamError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ParamError(f"--set {key}: {text!r} is not a valid value: {exc}") from None
    return out


def node_params(
    params_file: Path | None, overrides: dict[str, Any], *, node_name: str = NODE_NAME
) -> NodeParams:
    """Defaults <- the YAML's section for `node_name` <- overrides, validated."""
    values: dict[str, Any] = {}
    if params_file is not None:
        values.update(load_params_yaml(params_file, node_name=node_name))
    values.update(overrides)
    return validate_params(values)


def params_from_cli(
    params_file: Path | None,
    overrides: list[str] | None,
    shortcuts: dict[str, Any],
    *,
    node_name: str = NODE_NAME,
) -> NodeParams:
    """What `drive` and `replay` run with: the YAML <- `--set key=value` <- their own options.

    Options left at None keep the YAML's value; any bad value is a typer.BadParameter (exit 2).
    """
    import typer

    try:
        values = parse_overrides(overrides)
        values.update({k: v for k, v in shortcuts.items() if v is not None})
        return node_params(params_file or default_params_file(), values, node_name=node_name)
    except ParamError as exc:
        raise typer.BadParameter(str(exc), param_hint="--params/--set") from exc


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setup_logging(level: str = "INFO") -> None:
    """Log lines on stderr: rich on a terminal, one plain line per record otherwise (files).

    An unknown level is a typer.BadParameter (usage + message, exit 2), not logging's traceback.
    """
    if level.upper() not in LOG_LEVELS:
        import typer

        raise typer.BadParameter(
            f"{level!r} is not a log level; use one of {', '.join(LOG_LEVELS)}",
            param_hint="--log-level",
        )
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(name)s: %(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, handlers=[handler])


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM / SIGINT set `stop` (main thread only), for a clean shutdown under supervisors."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
