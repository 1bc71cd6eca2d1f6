"""A pip-installed fastdrive_ros is found through the ament index (launch file, config,
executable), and its node, which has no rclpy messages without colcon, stops at once with one line
that says to build with colcon, before loading the model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT


def test_pip_install_is_indexed_and_node_says_colcon(tmp_path: Path) -> None:
    wheels, prefix = tmp_path / "wheels", tmp_path / "prefix"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w",
                    str(wheels)], check=True, cwd=tmp_path)  # fmt: skip
    (wheel,) = wheels.glob("fastdrive_ros-*.whl")
    install = ["install", "--no-deps", "--ignore-installed", "--prefix", str(prefix), str(wheel)]
    subprocess.run([*pip, *install], check=True, cwd=tmp_path)
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    venv = Path(sys.prefix)
    env = {
        **os.environ,
        # only the pip prefix and the ROS venv: no colcon overlay (no generated messages)
        "AMENT_PREFIX_PATH": f"{prefix}:{venv}",
        "PYTHONPATH": str(site),
    }

    def ros2(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ros2", *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    found = ros2("pkg", "prefix", "fastdrive_ros")
    assert found.stdout.strip() == str(prefix), found.stderr[-2000:]
    assert "fastdrive_ros fastdrive_node" in ros2("pkg", "executables", "fastdrive_ros").stdout
    assert (prefix / "share/fastdrive_ros/launch/drive.launch.py").is_file()
    assert (prefix / "share/fastdrive_ros/config/drive.yaml").is_file()
    start = time.monotonic()
    run = ros2("run", "fastdrive_ros", "fastdrive_node", timeout=120)
    took = time.monotonic() - start
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("fastdrive_node:")]
    assert len(lines) == 1 and "colcon build" in lines[0] and "Traceback" not in run.stderr
    assert "planning with" not in run.stdout + run.stderr  # stopped before the model loaded
    assert took < 60, took
