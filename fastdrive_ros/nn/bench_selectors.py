"""Selection time of every encoder-stage selector at a given token count and width.

    python -m fastdrive_ros.nn.bench_selectors --tokens 1080 --width 256
    python -m fastdrive_ros.nn.bench_selectors --tokens 3249 --width 2048 --cameras 1 --repeats 1

Random weights and tokens (timing only); ReconPruner uses ReconPrunerConfig.for_width(width) and
VisPruner a random attention vector. Prints one line per selector: median wall-clock ms over the
repeats and the median CPU ms of this process (all threads; on a shared, busy machine the CPU time
is the steadier figure).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig
from fastdrive_ros.nn.registry import make_selector
from fastdrive_ros.nn.selection import VisualTokens, keep_count

SELECTORS = ("reconpruner", "divprune", "vispruner", "random", "none")


def bench(
    *, tokens: int, width: int, cameras: int, prune_ratio: float, repeats: int
) -> dict[str, tuple[float, float]]:
    """(median wall ms, median process CPU ms) of `select` per selector on random tokens."""
    if tokens % cameras:
        raise ValueError(f"{tokens} tokens do not split evenly over {cameras} cameras")
    per_camera = tokens // cameras
    gen = torch.Generator().manual_seed(0)
    visual = VisualTokens(
        tokens=torch.randn(tokens, width, generator=gen),
        grid_thw=torch.tensor([[1, 2, 2 * per_camera]] * cameras),
        aux={"attention_received": torch.rand(tokens, generator=gen)},
    )
    keep = keep_count(tokens, prune_ratio)
    results: dict[str, tuple[float, float]] = {}
    for name in SELECTORS:
        if name == "reconpruner":
            torch.manual_seed(0)
            pruner = ReconPruner(config=ReconPrunerConfig.for_width(width)).eval()
            selector = make_selector(name, pruner=pruner)
        else:
            selector = make_selector(name)
        selector.select(visual, keep)  # warm-up
        times, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            selection = selector.select(visual, keep)
            times.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - start_cpu) * 1e3)
        expected = tokens if name == "none" else keep
        assert selection.kept_index.numel() == expected
        results[name] = (statistics.median(times), statistics.median(cpu))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1080, help="N, merged tokens in all")
    parser.add_argument("--width", type=int, default=256, help="D, token width")
    parser.add_argument("--cameras", type=int, default=6, help="cameras sharing the N tokens")
    parser.add_argument("--prune-ratio", type=float, default=0.75, help="p; K = floor(N(1-p))")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per selector")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = bench(
        tokens=args.tokens,
        width=args.width,
        cameras=args.cameras,
        prune_ratio=args.prune_ratio,
        repeats=args.repeats,
    )
    keep = keep_count(args.tokens, args.prune_ratio)
    print(
        f"N={args.tokens} D={args.width} cameras={args.cameras} K={keep} "
        f"threads={args.threads} (median of {args.repeats})"
    )
    for name, (wall, cpu) in results.items():
        print(f"  {name:12s} {wall:10.1f} ms wall {cpu:10.1f} ms cpu")


if __name__ == "__main__":
    main()
