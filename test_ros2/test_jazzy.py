"""ROS 2 Jazzy (ros-jazzy-* PyPI wheels, Fast DDS 2.14): fastdrive_ros builds with colcon there,
and the Cyclone wire peer (`--ros-distro jazzy`) exchanges the custom Trajectory type with a Jazzy
rclpy node both ways, the Jazzy participant joining after the Cyclone one.

The Jazzy venv and build (scripts/ros2-jazzy-build, run by `make ros2-test`, ~3 min the first
time) live in build/ros2-jazzy; where the wheels do not install the test skips and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import HERE, ROOT, Proc, python, records, wait_for

OUT = ROOT / "build" / "ros2-jazzy"


@pytest.fixture(scope="module")
def jazzy() -> Path:
    """The Jazzy venv + colcon install that `make ros2-test` builds first (outside the network
    namespace: pip needs the registry)."""
    if not (OUT / "venv" / ".installed").is_file():
        pytest.skip(
            "no Jazzy venv: scripts/ros2-jazzy-build could not install the ros-jazzy-* wheels "
            "(see its output in make ros2-test)"
        )
    marker = OUT / "install" / "fastdrive_ros" / "share" / "fastdrive_ros" / "package.xml"
    assert marker.is_file(), f"colcon build on Jazzy failed: see {OUT / 'log'}"
    return OUT


def jazzy_env(out: Path) -> dict[str, str]:
    """A clean environment for the Jazzy process: nothing of Kilted's (libraries, PYTHONPATH)."""
    venv, install = out / "venv", out / "install" / "fastdrive_ros"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMENT", "COLCON", "_ROS"))}
    env.update(
        PATH=f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        AMENT_PREFIX_PATH=f"{install}:{venv}",
        PYTHONPATH=str(install / "lib" / "python3.11" / "site-packages"),
        LD_LIBRARY_PATH=str(install / "lib"),
        VIRTUAL_ENV=str(venv),
    )
    env.pop("CMAKE_PREFIX_PATH", None)
    return env


def test_cyclone_and_jazzy_exchange_trajectories(jazzy: Path, tmp_path: Path) -> None:
    out = tmp_path / "cyclone.jsonl"
    listener = Proc(
        "cyclone_listener",
        [*python("cyclone_listener.py"), str(out), "--distro", "jazzy",
         "/echo/trajectory=fastdrive_ros/msg/Trajectory"],
        tmp_path,
    )  # fmt: skip
    talker = Proc(
        "cyclone_talker", [*python("cyclone_talker.py"), "30", "--distro", "jazzy"], tmp_path
    )
    try:
        wait_for("the Cyclone listener", lambda: bool(records(out, "ready")), 60, listener)
        time.sleep(3.0)  # the Jazzy participant joins after both Cyclone ones
        echo = subprocess.run(
            [str(jazzy / "venv" / "bin" / "python"), str(HERE / "rclpy_echo.py"), "15"],
            env=jazzy_env(jazzy), capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert echo.returncode == 0, echo.stderr[-3000:]
        got = json.loads(echo.stdout.strip().splitlines()[-1])
    finally:
        talker.interrupt()
        listener.interrupt()
        talker.wait(timeout=20)
        listener.wait(timeout=20)
    assert got["received"] >= 40 and got["points"] == [6], got  # ~5 Hz for 15 s, Cyclone -> Jazzy
    echoed = records(out, "/echo/trajectory")
    assert len(echoed) >= 30 and all(r["points"] == 6 for r in echoed), len(echoed)  # and back
