"""Stock vs export-friendly vision tower on a random config: max |difference| and forward time.

    python -m fastdrive_ros.nn.bench_vision_export
    python -m fastdrive_ros.nn.bench_vision_export --depth 6 --hidden 384 --heads 6 \
        --out 256 --fullatt 2 5 --cameras 6 --size 252x448

Prints, per image size, the largest absolute difference of the merged tokens and of the attention
received (VisPruner's importance), and the median forward time of each implementation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

from fastdrive_ros.nn.vision import VisionEncoder


def _size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def compare(
    encoder: VisionEncoder, *, cameras: int, size: tuple[int, int], repeats: int
) -> dict[str, float]:
    """Max |diff| of tokens and attention received, and median ms of both implementations."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randn(cameras, 3, *size, generator=gen)
    twin = encoder.exportable(size)
    stock = encoder(pixels, return_attention=True)
    tokens, received = twin.forward_with_attention(pixels)
    return {
        "tokens_max_abs_diff": float(
            (tokens.reshape(stock.tokens.shape) - stock.tokens).abs().max()
        ),
        "tokens_max_abs": float(stock.tokens.abs().max()),
        "attention_max_abs_diff": float(
            (received.reshape(-1) - stock.aux["attention_received"]).abs().max()
        ),
        "stock_ms": _median_ms(lambda: encoder(pixels), repeats),
        "exportable_ms": _median_ms(lambda: twin(pixels), repeats),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=4, help="vision blocks")
    parser.add_argument("--hidden", type=int, default=64, help="vision width")
    parser.add_argument("--heads", type=int, default=2, help="attention heads")
    parser.add_argument("--out", type=int, default=96, help="merged token width D")
    parser.add_argument(
        "--fullatt", type=int, nargs="*", default=[1, 3], help="full-attention block indexes"
    )
    parser.add_argument("--cameras", type=int, default=2, help="cameras per frame")
    parser.add_argument(
        "--size", type=_size, nargs="+", default=[(112, 196), (140, 252)], help="HxW sizes"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(
        depth=args.depth,
        hidden_size=args.hidden,
        intermediate_size=2 * args.hidden,
        num_heads=args.heads,
        out_hidden_size=args.out,
        fullatt_block_indexes=list(args.fullatt),
    )
    encoder = VisionEncoder(config=config).eval()
    print(
        f"depth={args.depth} hidden={args.hidden} heads={args.heads} D={args.out} "
        f"fullatt={list(args.fullatt)} cameras={args.cameras} threads={args.threads}"
    )
    for size in args.size:
        r = compare(encoder, cameras=args.cameras, size=size, repeats=args.repeats)
        print(
            f"  {size[0]}x{size[1]}: max|diff| tokens {r['tokens_max_abs_diff']:.3e} "
            f"(max|token| {r['tokens_max_abs']:.2f}), "
            f"attention {r['attention_max_abs_diff']:.3e}; "
            f"stock {r['stock_ms']:.1f} ms, exportable {r['exportable_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
