"""The DDS benchmark runs end to end (tiny settings; the figures come from the full run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("cyclonedds", reason="pip install 'fastdrive_ros[dds]'")


@pytest.mark.dds
def test_bench_two_processes(loopback_netns) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastdrive_ros.transport.dds.bench", "--seconds", "1"]
        + ["--cameras", "2", "--width", "320", "--height", "180", "--hz", "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["sent"] == 20
    assert 0 < figures["received"] <= 20  # best effort: loss is reported, not hidden
    assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p95"] <= figures["latency_ms_max"]
    assert "delivered" in result.stdout and "p95" in result.stdout
