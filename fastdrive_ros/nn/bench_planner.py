"""Per-stage CPU/GPU timings of a VLA: encode, prune, planner prefill at each keep ratio, decode.

`python -m fastdrive_ros.nn.bench_planner` times the compact default with random weights (the
speed does not depend on the values); `--model FOLDER` times a saved bundle or checkpoint. The
ratios are interleaved within each repeat so a load change on a shared machine hits them alike;
the report gives the median and the minimum of the repeats.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

RATIOS = (0.0, 0.25, 0.5, 0.75)


def _ego():
    import numpy as np

    from fastdrive_ros.core_types import EgoState

    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([8.0 * t, 0.0 * t], axis=1),
        speed=8.0,
        acceleration=0.2,
        yaw_rate=0.01,
        steering=0.01,
    )


def _read_decision(planner, visual, ego):
    """The planner's decision reader on the whole front camera (what prefill runs first)."""
    import torch

    from fastdrive_ros.nn.decision_reader import full_status, minimal_ego

    reader = planner.decision_reader
    cells = reader.grid[0] * reader.grid[1]
    front = visual.tokens[:cells][None].float()
    kept = torch.ones(1, cells, dtype=torch.bool, device=front.device)
    speed = torch.tensor([minimal_ego(ego.speed, ego.command)], device=front.device)
    decision, corridor = reader(front, kept, speed)
    status = torch.tensor([full_status(ego)], device=front.device)
    return decision, reader.read_pace(speed, status, corridor)


def bench(
    model: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads Optional on Python 3.10)
        typer.Option(help="VLA bundle or checkpoint folder; default: compact, random weights."),
    ] = None,
    config: Annotated[
        str, typer.Option(help="'compact' or 'tiny' (used when --model is not given).")
    ] = "compact",
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    repeats: Annotated[int, typer.Option(help="Timed repeats (after one warm-up).")] = 5,
    device: Annotated[str, typer.Option(help="torch device: cpu or cuda.")] = "cpu",
    decode_tokens: Annotated[
        int, typer.Option(help="Greedy tokens for the text-path decode timing.")
    ] = 16,
) -> None:
    """Print encode / prune / prefill / decode timings and the prefill speed-up at each ratio."""
    import torch

    from fastdrive_ros.nn.configs import compact_config, tiny_config
    from fastdrive_ros.nn.selection import keep_count
    from fastdrive_ros.nn.vla import VLA

    torch.set_num_threads(threads)
    if model is not None:
        vla = VLA.from_pretrained(model, device=device)
    else:
        vla = VLA.build(compact_config() if config == "compact" else tiny_config()).to(device)
    cams, (height, width) = len(vla.config.camera_names), vla.config.image_size
    pixels = torch.randn(cams, 3, height, width, device=device)
    ego, planner = _ego(), vla.planner
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {}

    def timed(name: str, fn):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.setdefault(name, []).append((time.perf_counter() - start) * 1000.0)
        return out

    with torch.no_grad():
        visual = vla.vision(pixels)
        n = visual.tokens.shape[0]
        for rep in range(repeats + 1):
            visual = timed("encode", lambda: vla.vision(pixels))
            for ratio in RATIOS:
                keep = keep_count(n, ratio)
                if vla.pruner is not None:
                    selection = timed(
                        f"prune {ratio:.2f}", lambda k=keep, v=visual: vla.pruner.select(v, k)
                    )
                    index = selection.kept_index
                else:
                    index = torch.arange(keep)
                result = planner.plan(
                    kept_tokens=visual.tokens[index.to(visual.tokens.device)],
                    kept_index=index,
                    grid_thw=visual.grid_thw,
                    ego=ego,
                )
                times.setdefault(f"prefill {ratio:.2f}", []).append(result.timings_ms["prefill"])
            text = planner.plan(
                kept_tokens=visual.tokens,
                kept_index=torch.arange(n),
                grid_thw=visual.grid_thw,
                ego=ego,
                head="text",
                max_new_tokens=decode_tokens,
            )
            steps = max(1, getattr(text, "generated_tokens", 0) or decode_tokens)
            times.setdefault("decode / token", []).append(text.timings_ms["decode"] / steps)
            if planner.decision_reader is not None:  # inside prefill above; alone here
                timed("decision reader", lambda v=visual: _read_decision(planner, v, ego))
            if rep == 0:
                times = {}  # warm-up
    params = sum(p.numel() for p in vla.parameters()) / 1e6
    typer.echo(
        f"model {model or config}: {cams} cameras {height}x{width}, N = {n} visual tokens, "
        f"{params:.1f} M parameters, {planner.text_token_count(ego, cams)} text tokens, "
        f"{threads} threads on {device}"
    )
    typer.echo(f"{'stage':<16}{'median ms':>12}{'min ms':>10}")
    for name, values in times.items():
        typer.echo(f"{name:<16}{statistics.median(values):>12.1f}{min(values):>10.1f}")
    full = statistics.median(times["prefill 0.00"])
    for ratio in RATIOS[1:]:
        part = statistics.median(times[f"prefill {ratio:.2f}"])
        typer.echo(
            f"prefill speed-up at {int(ratio * 100)}% pruned (K = {keep_count(n, ratio)}): "
            f"{full / part:.2f}x"
        )
    frame = statistics.median(times["encode"]) + statistics.median(times["prefill 0.50"])
    if vla.pruner is not None:
        frame += statistics.median(times["prune 0.50"])
    typer.echo(f"whole frame at 50% (encode + prune + prefill, regression head): {frame:.0f} ms")


def main() -> None:
    typer.run(bench)


if __name__ == "__main__":
    main()
