"""Figures for the node under `ros2 launch` on this machine (a benchmark, not a test).

    scripts/netns-run bash -c 'source scripts/ros2-env.sh && \
        ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST python test_ros2/bench_launch.py [--soak-s 180]'

1. Kept up: the synthetic bag's cameras, live-stamped, every Nth frame so the model keeps up;
   % of played frames that got a trajectory (status OK) at a separate rclpy subscriber, and
   camera stamp -> trajectory received minus the model's own time (FrameLatency.total_ms minus
   its queue stage), p50/p95.
2. Soak: all six cameras at 12 Hz for --soak-s seconds (frames dropped and counted); the node's
   RSS every 5 s, growth after the first minute.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import Proc, python, records, wait_for  # noqa: E402


def node_pid() -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(part.endswith(b"lib/fastdrive_ros/fastdrive_node") for part in cmd):
                return int(proc.name)
    return None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bag", type=Path, default=None)
    parser.add_argument("--every", type=int, default=24, help="kept-up phase: every Nth frame")
    parser.add_argument("--kept-up-s", type=float, default=60.0)
    parser.add_argument("--soak-s", type=float, default=180.0)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    if args.bag is None:
        from fastdrive_ros.demo import DemoPaths, make_scene_bag

        paths = DemoPaths(root / "build" / "ros2-test")
        make_scene_bag(paths, seconds=4.0, image_size=(320, 180), progress=False)
        args.bag = paths.bag
    logdir = Path(tempfile.mkdtemp(prefix="bench_launch_"))
    out = logdir / "listener.jsonl"
    launch = Proc("launch", ["ros2", "launch", "fastdrive_ros", "drive.launch.py"], logdir)
    listener = Proc("listener", [*python("rclpy_listener.py"), str(out)], logdir)
    result: dict = {"logs": str(logdir)}
    try:
        wait_for("node diagnostics", lambda: bool(records(out, "diagnostics")), 300, launch)
        pid = node_pid()
        # 1. kept up
        t0 = time.time_ns()
        player = Proc(
            "player_kept_up",
            [*python("rclpy_player.py"), str(args.bag), "--seconds", str(args.kept_up_s),
             "--every", str(args.every)],
            logdir,
        )  # fmt: skip
        player.wait(timeout=args.kept_up_s + 120)
        time.sleep(5.0)
        sent = json.loads(player.output().strip().splitlines()[-1])["messages"]
        frames = sent.get("/CAM_FRONT/image_rect_compressed", 0)
        trajs = [r for r in records(out, "trajectory") if r["recv_ns"] > t0]
        ok = [r for r in trajs if r["status"] == 0]
        lat = {r["stamp_ns"]: r for r in records(out, "latency") if r["recv_ns"] > t0}
        overhead = [
            (r["recv_ns"] - r["stamp_ns"]) / 1e6
            - (lat[r["stamp_ns"]]["total_ms"] - lat[r["stamp_ns"]]["stages"].get("queue", 0.0))
            for r in ok
            if r["stamp_ns"] in lat
        ]
        model = [v["total_ms"] - v["stages"].get("queue", 0.0) for v in lat.values()]
        # the anchor camera's stamp is the earliest: the frame is complete only when the last
        # camera (nuScenes fires them tens of ms apart) has arrived
        spread = [v.get("sync_spread_ms", 0.0) for v in lat.values()]
        result["kept_up"] = {
            "frames_played": frames,
            "every_nth_frame": args.every,
            "trajectories_ok": len(ok),
            "pct_frames_with_trajectory": round(100.0 * len(ok) / frames, 1) if frames else None,
            "stamp_to_received_minus_model_ms_p50": round(statistics.median(overhead), 1)
            if overhead
            else None,
            "stamp_to_received_minus_model_ms_p95": round(pct(overhead, 0.95), 1),
            "model_ms_p50": round(statistics.median(model), 1) if model else None,
            "camera_sync_spread_ms_p50": round(statistics.median(spread), 1) if spread else None,
        }
        # 2. soak at full rate
        player = Proc(
            "player_soak",
            [*python("rclpy_player.py"), str(args.bag), "--seconds", str(args.soak_s)],
            logdir,
        )
        samples = []
        start = time.monotonic()
        while player.proc.poll() is None and pid is not None:
            samples.append((round(time.monotonic() - start, 1), round(rss_mb(pid), 1)))
            time.sleep(5.0)
        player.wait(timeout=60)
        last = [r for r in records(out, "latency")][-1:]
        after_min = [mb for t, mb in samples if t >= 60.0]
        result["soak"] = {
            "seconds": args.soak_s,
            "rss_mb_first": samples[0][1] if samples else None,
            "rss_mb_at_60s": after_min[0] if after_min else None,
            "rss_mb_last": samples[-1][1] if samples else None,
            "growth_after_60s_mb": round(after_min[-1] - after_min[0], 1) if after_min else None,
            "frames_processed": last[0]["frames_processed"] if last else None,
            "frames_dropped": last[0]["frames_dropped"] if last else None,
            "rss_samples": samples,
        }
    finally:
        launch.interrupt()
        result["launch_exit"] = launch.wait(timeout=40)
        listener.interrupt()
        listener.wait(timeout=20)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
