"""Shared fixtures: loopback-only network checks, small temporary datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _only_loopback() -> bool:
    """True when this process's network namespace has no interface but `lo`."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    names = {line.split(":", 1)[0].strip() for line in lines}
    return names <= {"lo"}


@pytest.fixture
def loopback_netns() -> None:
    """Skip unless the test runs inside the loopback-only namespace made by scripts/netns-run."""
    if os.environ.get("FASTDRIVE_NETNS") != "isolated" or not _only_loopback():
        pytest.skip(
            "needs a loopback-only network namespace: run via `make test` (scripts/netns-run)"
        )
