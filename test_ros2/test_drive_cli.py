"""`fastdrive drive --transport rclpy --duration S`: the rclpy node outside launch stops by itself
after S seconds (exit 0), with its Python log lines printed by the ROS logger."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def test_drive_rclpy_honours_duration(tmp_path: Path) -> None:
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "fastdrive_ros.cli", "drive", "--transport", "rclpy",
         "--duration", "3", "--backend", "onnxruntime", "--node-name", "fastdrive_cli"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    took = time.monotonic() - start
    text = run.stdout + run.stderr
    assert run.returncode == 0, text[-3000:]
    assert "stopping after --duration 3.0 s" in text, text[-3000:]
    # Python logging came out through rcutils ("[INFO] [<time>] [fastdrive_cli]: fastdrive_ros...")
    assert "[fastdrive_cli]: fastdrive_ros." in text, text[-3000:]
    assert "Traceback" not in text
    assert took < 200, took
