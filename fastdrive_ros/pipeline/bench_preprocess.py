"""Benchmark: the node's own work per frame (decode + preprocess), before and after issue 11.

    python -m fastdrive_ros.pipeline.bench_preprocess [--runs 30] [--threads 2] [--frame-ms 302]

Six cameras of each size (640x360 as the demo, 1600x900 as nuScenes) to the shipped model's
504x280. "before" is the reference path (full JPEG decode, nn.vision.ImagePreprocessor: float
resize and normalisation); "after" is what the pipeline now runs (DCT-domain reduced decode for
JPEGs >= 2x the model size, pipeline.preprocess.FusedPreprocessor). The two are timed in
alternation, so a busy machine slows both alike; p50 and p95 over --runs are printed, with the
share of a --frame-ms frame (302 ms: the demo's p50 frame on a 2-core CPU, FACTS.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from fastdrive_ros.nn.vision import ImagePreprocessor
from fastdrive_ros.pipeline.decode import decode_frame
from fastdrive_ros.pipeline.fakes import jpeg_bytes, sample_image
from fastdrive_ros.pipeline.preprocess import FusedPreprocessor
from fastdrive_ros.pipeline.types import CameraFrameIn

MODEL_SIZE = (280, 504)  # (H, W) of models/default


def _camera_jpegs(width: int, height: int, cameras: int = 6) -> list[CameraFrameIn]:
    frames = []
    for cam in range(cameras):
        data = jpeg_bytes(sample_image(width, height, seed=cam), quality=90)
        frames.append(CameraFrameIn(f"CAM_{cam}", 1, data, "jpeg"))
    return frames


def _paths(
    frames: list[CameraFrameIn],
) -> dict[str, tuple[Callable[[], np.ndarray], Callable[[np.ndarray], torch.Tensor]]]:
    reference, fused = ImagePreprocessor(size=MODEL_SIZE), FusedPreprocessor(size=MODEL_SIZE)
    target = (MODEL_SIZE[1], MODEL_SIZE[0])

    def decode_full() -> np.ndarray:
        return np.stack([decode_frame(f, max_bytes=1 << 24) for f in frames])

    def decode_reduced() -> np.ndarray:
        return np.stack([decode_frame(f, max_bytes=1 << 24, reduce_to=target) for f in frames])

    return {
        "before": (decode_full, lambda images: reference(torch.from_numpy(images))),
        "after": (decode_reduced, lambda images: fused(torch.from_numpy(images))),
    }


def measure(width: int, height: int, runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    """Map path -> stage (decode, preprocess, total, cpu) -> (p50, p95) ms.

    "cpu" is the process CPU time of decode + preprocess (all threads): on a machine shared
    with other jobs it is what the work itself costs, where wall time also counts waiting.
    """
    paths = _paths(_camera_jpegs(width, height))
    samples: dict[str, dict[str, list[float]]] = {
        name: {"decode": [], "preprocess": [], "total": [], "cpu": []} for name in paths
    }
    for run in range(runs + 2):  # two warm-up rounds (allocations, first-call set-up)
        for name, (decode, preprocess) in paths.items():
            cpu = time.process_time()
            start = time.perf_counter()
            images = decode()
            middle = time.perf_counter()
            preprocess(images)
            end = time.perf_counter()
            cpu = time.process_time() - cpu
            if run >= 2:
                samples[name]["cpu"].append(cpu * 1e3)
                samples[name]["decode"].append((middle - start) * 1e3)
                samples[name]["preprocess"].append((end - middle) * 1e3)
                samples[name]["total"].append((end - start) * 1e3)
    return {
        name: {
            stage: (float(np.percentile(v, 50)), float(np.percentile(v, 95)))
            for stage, v in stages.items()
        }
        for name, stages in samples.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed rounds per path")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--frame-ms", type=float, default=302.0, help="frame time for the share")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 1 or args.frame_ms <= 0:
        parser.error("--runs and --threads must be >= 1, --frame-ms > 0")
    torch.set_num_threads(args.threads)
    print(
        f"six cameras -> {MODEL_SIZE[1]}x{MODEL_SIZE[0]}, torch {args.threads} threads, "
        f"{args.runs} runs; share of a {args.frame_ms:g} ms frame"
    )
    print(f"{'input':>10} {'path':>7} {'decode p50/p95':>16} {'preprocess p50/p95':>20} "
          f"{'total p50':>10} {'share':>6} {'CPU p50':>8} {'share':>6}")  # fmt: skip
    for width, height in ((640, 360), (1600, 900)):
        figures = measure(width, height, args.runs)
        for name, stages in figures.items():
            dec, pre, total = stages["decode"], stages["preprocess"], stages["total"]
            print(
                f"{width}x{height:<4} {name:>7} {dec[0]:7.1f} / {dec[1]:6.1f} "
                f"{pre[0]:9.1f} / {pre[1]:8.1f} {total[0]:10.1f} "
                f"{100 * total[0] / args.frame_ms:5.1f}% {stages['cpu'][0]:8.1f} "
                f"{100 * stages['cpu'][0] / args.frame_ms:5.1f}%"
            )
        speedup = figures["before"]["total"][0] / figures["after"]["total"][0]
        cpu_gain = figures["before"]["cpu"][0] / figures["after"]["cpu"][0]
        print(f"{'':>10} {'':>7} after: {speedup:.1f}x less wall time, {cpu_gain:.1f}x less CPU")


if __name__ == "__main__":
    main()
