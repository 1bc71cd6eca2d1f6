"""Subcommands of this room (see fastdrive_ros/cli.py); filled in by the room's owner."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this room's subcommands to `app`."""
