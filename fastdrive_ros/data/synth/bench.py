"""Benchmark of the synthetic world: time per scene, images per second, bytes per scene.

    python -m fastdrive_ros.data.synth.bench --seconds 20 --sizes 1600x900,448x252

One worker, OpenCV on one thread. Town building (once per process and town) is timed apart from
the scenes. Wall time depends on what else the machine runs; CPU time is this process only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2


def _bench_size(size: tuple[int, int], seconds: float, sweeps: bool, seed: int) -> dict:
    from fastdrive_ros.data.synth.generate import generate_dataset
    from fastdrive_ros.data.synth.world import renderers, town_assets

    t0, c0 = time.perf_counter(), time.process_time()
    town_assets(seed, "singapore-onenorth", 5)
    renderers(*size)
    town_wall, town_cpu = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = generate_dataset(
            Path(tmp) / "ds",
            scenes=1,
            seconds=seconds,
            seed=seed,
            image_size=size,
            sweeps=sweeps,
            progress=False,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "size": size,
        "wall": wall,
        "cpu": cpu,
        "images": summary.images,
        "bytes": summary.bytes_on_disk,
        "stages": summary.stage_seconds,
        "town_wall": town_wall,
        "town_cpu": town_cpu,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="scene length")
    parser.add_argument("--sizes", default="1600x900,448x252", help="comma-separated WxH list")
    parser.add_argument("--keyframes-only", action="store_true", help="skip 12 Hz sweeps")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    for size in sizes:
        r = _bench_size(size, args.seconds, not args.keyframes_only, args.seed)
        stages = r["stages"]
        scene_s = stages["scenes"]  # wall time of the scene itself (one worker)
        per_img = scene_s / r["images"]
        print(
            f"{size[0]}x{size[1]}, {args.seconds:g} s scene, "
            f"{'keyframes only' if args.keyframes_only else 'with 12 Hz sweeps'}:"
        )
        print(
            f"  town build (once per process and town): {r['town_wall']:.1f} s wall, "
            f"{r['town_cpu']:.1f} s CPU"
        )
        print(
            f"  scene: {scene_s:.1f} s wall for {r['images']} images ({1 / per_img:.1f} img/s); "
            f"simulate {stages['simulate']:.1f} s, render+write {stages['render']:.1f} s, "
            f"annotate+CAN {stages['annotate']:.1f} s"
        )
        print(
            f"  whole run incl. map and tables (once per dataset, {stages['maps_and_tables']:.1f}"
            f" s): {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU of this process"
        )
        print(
            f"  disk: {r['bytes'] / 1e6:.1f} MB per scene, "
            f"{r['bytes'] / r['images'] / 1e3:.1f} kB per image (JPEG + 2 PNG masks)"
        )
        print(
            f"  50k images at this size: {50000 * per_img / 60:.0f} min with 1 worker "
            f"(~{50000 * per_img / 120:.0f} min with --workers 2 on 2 idle cores)"
        )


if __name__ == "__main__":
    main()
