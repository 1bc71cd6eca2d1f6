"""Soak benchmark: sustained 6 x 12 Hz camera input in real time, memory and latency over time.

    python -m fastdrive_ros.pipeline.soak --seconds 180             # slow fake model
    python -m fastdrive_ros.pipeline.soak --seconds 180 --model DIR  # a real model folder

A feeder thread sends six JPEG images per camera period (nuScenes-like offsets) and odometry at
50 Hz, stamped with the system clock; a PipelineWorker plans as fast as the model allows, so a
slow model means dropped frames. Every `--every` seconds a line reports resident memory (RSS),
frames received / planned / dropped, total and frame-age latency p50/p95 and the largest queue.
The last line compares RSS after warm-up (min(30 s, a third of the run)) with RSS at the end
(no growth expected).
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time

import torch

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.pipeline.clock import SystemClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.fakes import (
    FakeBackend,
    FakePlanner,
    jpeg_bytes,
    sample_image,
    simple_preprocess,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.simulate import NUSCENES_OFFSETS_MS
from fastdrive_ros.pipeline.types import CameraFrameIn, OdometryIn, PipelineOutput
from fastdrive_ros.pipeline.worker import PipelineWorker


def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _feed(pipeline: FramePipeline, jpeg: bytes, rate_hz: float, stop: threading.Event) -> None:
    """Cameras at rate_hz with nuScenes offsets, odometry at 50 Hz, in real time."""
    clock = pipeline.clock
    start = clock.now_ns()
    events: list[tuple[float, str]] = []
    period = 1.0 / rate_hz
    for name in CAMERA_NAMES:
        events.append((NUSCENES_OFFSETS_MS.get(name, 0.0) / 1e3 % period, name))
    events += [(k * 0.02, "odom") for k in range(int(period / 0.02) + 1) if k * 0.02 < period]
    events.sort()
    cycle = 0
    while not stop.is_set():
        base = start + int(cycle * period * 1e9)
        for offset, what in events:
            due = base + int(offset * 1e9)
            wait = (due - clock.now_ns()) / 1e9
            if wait > 0 and stop.wait(wait):
                return
            now = clock.now_ns()
            if what == "odom":
                t = (due - start) / 1e9
                pipeline.on_odometry(OdometryIn(due, 8.0 * t, 0.0, 0.0, 8.0, 0.0))
            else:
                pipeline.on_camera(CameraFrameIn(what, due, jpeg, "jpeg", received_ns=now))
        cycle += 1


def run(
    *,
    seconds: float,
    every: float,
    pipeline: FramePipeline,
    image_size: tuple[int, int],
    rate_hz: float = 12.0,
) -> dict[str, float]:
    """Run the soak and print the report lines; returns the final figures."""
    width, height = image_size
    jpeg = jpeg_bytes(sample_image(width, height))
    stop = threading.Event()
    outputs: list[PipelineOutput] = []
    lock = threading.Lock()

    def on_output(out: PipelineOutput) -> None:
        with lock:
            outputs.append(out)
            del outputs[:-1]  # keep only the newest (memory must stay flat)

    feeder = threading.Thread(target=_feed, args=(pipeline, jpeg, rate_hz, stop), daemon=True)
    worker = PipelineWorker(pipeline=pipeline, on_output=on_output)
    start = time.monotonic()
    worker.start()
    feeder.start()
    baseline = None
    warm_up_s = min(30.0, seconds / 3)  # allocator arenas and caches settle first
    print(
        f"{'t s':>6} {'RSS MB':>8} {'recv':>6} {'planned':>7} {'dropped':>7} "
        f"{'total p50/p95 ms':>17} {'age p50/p95 ms':>16} {'max queue':>9}"
    )
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            time.sleep(min(every, max(0.0, seconds - elapsed)))
            c = pipeline.counters
            pct = pipeline.latency.percentiles()
            total = pct.get("total", (float("nan"),) * 2)
            age = pct.get("frame_age", (float("nan"),) * 2)
            queue = max(v for k, v in pipeline.queue_lengths().items() if k != "odometry")
            mem = rss_mb()
            if baseline is None and time.monotonic() - start >= warm_up_s:
                baseline = mem
            print(
                f"{time.monotonic() - start:6.0f} {mem:8.1f} {c.get('frames/received'):6d} "
                f"{c.get('processed'):7d} {c.group_total('dropped'):7d} "
                f"{total[0]:8.1f}/{total[1]:<8.1f} {age[0]:7.1f}/{age[1]:<8.1f} {queue:9d}",
                flush=True,
            )
    finally:
        stop.set()
        feeder.join(5)
        worker.stop()
    end = rss_mb()
    growth = end - (baseline if baseline is not None else end)
    print(
        f"RSS after {warm_up_s:.0f} s warm-up {baseline or float('nan'):.1f} MB, at the end "
        f"{end:.1f} MB: growth {growth:+.1f} MB"
    )
    c = pipeline.counters
    return {
        "received": c.get("frames/received"),
        "planned": c.get("processed"),
        "dropped": c.group_total("dropped"),
        "rss_growth_mb": growth,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="soak duration")
    parser.add_argument("--every", type=float, default=10.0, help="report period, seconds")
    parser.add_argument("--model", default=None, help="model folder (default: a slow fake)")
    parser.add_argument("--backend", default="torch", help="backend for --model")
    parser.add_argument("--encode-ms", type=float, default=150.0, help="fake encoder cost")
    parser.add_argument("--plan-ms", type=float, default=50.0, help="fake planner cost")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--image", default="480x270", help="camera image size WxH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.image.lower().split("x"))
    config = PipelineConfig()
    if args.model:
        from fastdrive_ros.pipeline.factory import PipelineParams, build_pipeline

        params = PipelineParams(
            model_dir=args.model, backend=args.backend, device="cpu", config=config
        )
        pipeline = build_pipeline(params, clock=SystemClock())
        what = f"model {args.model} ({pipeline.info.backend})"
    else:
        pipeline = FramePipeline(
            config=config,
            backend=FakeBackend(latency_ms=args.encode_ms),
            planner=FakePlanner(latency_ms=args.plan_ms),
            clock=SystemClock(),
            image_size=(280, 504),
            preprocess=simple_preprocess((280, 504)),
        )
        what = f"fake model ({args.encode_ms:g} + {args.plan_ms:g} ms slept per frame)"
    print(f"soak: 6 cameras x 12 Hz, {width}x{height} JPEG, {what}, {args.seconds:g} s")
    run(seconds=args.seconds, every=args.every, pipeline=pipeline, image_size=(width, height))


if __name__ == "__main__":
    main()
