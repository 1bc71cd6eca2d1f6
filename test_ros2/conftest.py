"""Real ROS 2 tests (`make ros2-test`): the node under `ros2 launch` and separate processes.

They need `make ros2` (ROS 2 in .venv-ros, the colcon build in install/), `source
scripts/ros2-env.sh` and a loopback-only network namespace (scripts/netns-run). Without them every
test skips with the reason, unless FASTDRIVE_REQUIRE_ROS2=1 (set by `make ros2-test`) turns the
skip into a failure so a broken setup cannot pass silently. Nothing here is imported by `make
test` (it collects test/ only).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
NODE = "/fastdrive"


def _missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.environ.get("FASTDRIVE_NETNS") != "isolated":
        return "not in a loopback-only network namespace (run through scripts/netns-run)"
    if shutil.which("ros2") is None or importlib.util.find_spec("rclpy") is None:
        return "ROS 2 is not set up: `make ros2`, then `source scripts/ros2-env.sh`"
    if importlib.util.find_spec("fastdrive_ros.msg") is None:
        return "fastdrive_ros messages are not built: `make ros2` (colcon build)"
    return None


@pytest.fixture(scope="session", autouse=True)
def ros2_ready() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("FASTDRIVE_REQUIRE_ROS2") == "1":
        pytest.fail(f"ROS 2 tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def scene_bag() -> Path:
    """A 4 s synthetic scene as a rosbag2 (6 x 320x180 JPEG cameras at 12 Hz, odometry); cached."""
    from fastdrive_ros.demo import DemoPaths, make_scene_bag

    paths = DemoPaths(ROOT / "build" / "ros2-test")
    make_scene_bag(paths, seconds=4.0, image_size=(320, 180), progress=False)
    return paths.bag


class Proc:
    """A child process in its own process group, output to a log file."""

    def __init__(self, name: str, argv: list[str], logdir: Path, **env: str) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        self._file = open(self.log, "w", encoding="utf-8")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            argv,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            cwd=logdir,  # never the repo root: it would shadow the colcon-installed package
            env={**os.environ, **env},
            start_new_session=True,  # signal the whole group, as a terminal's Ctrl-C does
        )

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int | None:
        """Exit status, or None after SIGKILL of the group when it did not end in time."""
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            code = None
        self._file.close()
        return code

    def output(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")


def python(script: str) -> list[str]:
    return [sys.executable, str(HERE / script)]


def records(path: Path, topic: str | None = None) -> list[dict[str, Any]]:
    """The JSON lines a listener wrote so far (optionally one topic)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if topic is None or row["topic"] == topic:
            rows.append(row)
    return rows


def wait_for(what: str, check: Callable[[], bool], timeout: float, *procs: Proc) -> None:
    """Poll `check` until true; fail with the logs of `procs` when it is not within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for p in procs:
            if p.proc.poll() is not None:
                pytest.fail(f"{p.name} exited ({p.proc.returncode}) while waiting for {what}:\n"
                            f"{p.output()[-4000:]}")  # fmt: skip
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name} ---\n{p.output()[-3000:]}" for p in procs)
    pytest.fail(f"no {what} within {timeout:.0f} s\n{logs}")


def ros2_cli(*args: str, timeout: float = 60.0, attempts: int = 4) -> str:
    """stdout + stderr of `ros2 ARGS --no-daemon`, retried while discovery has not found the node
    yet (without a daemon each call discovers the graph from scratch)."""
    text = ""
    for _ in range(attempts):
        done = subprocess.run(
            ["ros2", *args, "--no-daemon"],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/tmp",
        )
        text = done.stdout + done.stderr
        if text.strip() and "Node not found" not in text:
            break
        time.sleep(1.0)
    return text


@pytest.fixture
def logdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
