"""Quality and latency against the keep ratio, one line per method (matplotlib, Agg backend).

Every method's line starts at the unpruned model (keep ratio 1.0, computed once); the
constant-velocity planner is a horizontal reference on the quality plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastdrive_ros.eval.records import EvalRecord, EvalResults
from fastdrive_ros.eval.report_md import DISPLAY


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lines(results: EvalResults) -> dict[str, list[EvalRecord]]:
    """Per pruner its records by decreasing keep ratio, the unpruned record first."""
    unpruned = results.unpruned
    lines: dict[str, list[EvalRecord]] = {}
    for record in results.records:
        if record.pruner == "none" or record.prune_ratio == 0:
            continue
        lines.setdefault(record.pruner, []).append(record)
    for records in lines.values():
        records.sort(key=lambda r: r.prune_ratio)
        if unpruned is not None:
            records.insert(0, unpruned)
    return lines


def plot_quality(results: EvalResults, path: str | Path) -> Path:
    """quality_vs_keep.png: L2 Avg (cm), collision Avg and intersection Avg (%) vs keep ratio."""
    plt = pyplot()
    panels = (("l2", "L2 Avg (cm)", 100.0), ("collision", "Collision Avg (%)", 1.0))
    panels += (("intersection", "Intersection Avg (%)", 1.0),)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    cv = results.reference("constant_velocity")
    for ax, (metric, label, scale) in zip(axes, panels):
        for pruner, records in _lines(results).items():
            points = [(r.keep_ratio, r.metric(metric)) for r in records]
            points = [(x, y * scale) for x, y in points if y is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", label=DISPLAY.get(pruner, pruner))
        unpruned = results.unpruned
        if unpruned is not None and unpruned.metric(metric) is not None:
            ax.plot(
                [1.0], [unpruned.metric(metric) * scale], "k*", markersize=12, label="Unpruned"
            )
        if cv is not None and cv.metric(metric) is not None:
            ax.axhline(cv.metric(metric) * scale, color="grey", ls="--", label=DISPLAY[cv.pruner])
        ax.set_xlabel("keep ratio (fraction of visual tokens kept)")
        ax.set_ylabel(label)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Open-loop planning quality vs keep ratio")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_latency(results: EvalResults, path: str | Path) -> Path:
    """latency_vs_keep.png: prefill and total ms vs kept tokens, one line per method.

    Total = encoder + pruner + prefill + decode, the per-frame cost a node pays.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, field, label in zip(axes, ("prefill_ms", "total_ms"), ("Prefill (ms)", "Total (ms)")):
        for pruner, records in _lines(results).items():
            points = [(r.kept_tokens, getattr(r, field)) for r in records]
            points = [(x, y) for x, y in points if x is not None and y is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", label=DISPLAY.get(pruner, pruner))
        ax.set_xlabel("visual tokens kept")
        ax.set_ylabel(label + ", median over samples")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    meta = results.metadata
    fig.suptitle(f"Latency vs kept tokens ({meta.get('device')}, {meta.get('threads')} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_events(results: EvalResults, path: str | Path) -> Path:
    """l2_by_event.png: L2 Avg (cm) per group of what the ego does next, one bar per row.

    Rows: the camera-free references, the unpruned model, the ratio-0 probes and every method at
    the largest prune ratio; groups with no keyframe are left out. Where the bars of own,
    shuffled and no-images tokens stand level, the planner does not read the images there.
    """
    plt = pyplot()
    largest = max((r.prune_ratio for r in results.records), default=0.0)
    rows = [r for r in results.references if r.pruner != "ground_truth"]
    rows += [r for r in results.records if r.prune_ratio == 0 and r.shared_with is None]
    rows += [r for r in results.records if largest > 0 and r.prune_ratio == largest]
    groups = []
    for record in rows:
        for group, cell in record.by_event.items():
            if cell.get("samples") and group not in groups:
                groups.append(group)
    fig, ax = plt.subplots(figsize=(min(18.0, 2.0 + 1.4 * len(groups)), 5.0))
    width = 0.8 / max(1, len(rows))
    for i, record in enumerate(rows):
        ys = [100.0 * (record.by_event.get(g, {}).get("l2_avg") or float("nan")) for g in groups]
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(groups))]
        label = DISPLAY.get(record.pruner, record.pruner)
        if record.prune_ratio > 0:
            label += f" @{100 * record.prune_ratio:.0f} %"
        ax.bar(xs, ys, width=width, label=label)
    counts = {
        g: next((r.by_event[g]["samples"] for r in rows if g in r.by_event), 0) for g in groups
    }
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g}\n(n={counts[g]})" for g in groups], fontsize=8)
    ax.set_ylabel("L2 Avg (cm)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    meta = results.metadata
    fig.suptitle(
        f"L2 Avg by what the ego does in the next 3 s (ego inputs: {meta.get('ego_inputs')})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
