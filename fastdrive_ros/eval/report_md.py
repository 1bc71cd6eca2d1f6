"""results.md: a quality table laid out like FastDriveVLA's Table 1, efficiency, targets.

Quality: rows = references, the unpruned model, then one block per prune ratio with a row per
method; columns = L2 (cm) / collision (%) / intersection (%) at 1, 2, 3 s and Avg, then the
relative values (% of unpruned). Efficiency: kept tokens, per-stage milliseconds, analytic TFLOPs
and speed-ups against the unpruned model of the same run.
"""

from __future__ import annotations

from pathlib import Path

from fastdrive_ros.eval.records import HORIZON_KEYS, EvalRecord, EvalResults

DISPLAY = {
    "reconpruner": "ReconPruner (FastDriveVLA)",
    "fastv": "FastV",
    "sparsevlm": "SparseVLM",
    "divprune": "DivPrune",
    "vispruner": "VisPruner",
    "prune2drive": "Prune2Drive",
    "random": "Random",
    "none": "Unpruned",
    "constant_velocity": "Constant velocity (no images)",
    "ctra": "CTRA from ego status (no images)",
    "ego_mlp": "Ego-status MLP (no images)",
    "ground_truth": "Logged trajectory (GT)",
    "oracle_fg": "Probe: oracle FG (highest GT foreground share)",
    "anti_oracle": "Probe: anti-oracle (lowest GT foreground share)",
    "shuffled": "Probe: another scene's tokens",
    "no_images": "Probe: no visual tokens",
}


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _sig(value: float | None) -> str:
    """Three significant digits: TFLOPs span 1e-6 (tiny test models) to 20 (3B)."""
    return "–" if value is None else f"{value:.3g}"


def _name(record: EvalRecord) -> str:
    return DISPLAY.get(record.pruner, record.pruner)


def _quality_row(record: EvalRecord, ratio: str) -> str:
    l2 = [record.metric("l2", h) for h in HORIZON_KEYS]
    cells = [_num(None if v is None else 100.0 * v) for v in l2]  # metres -> cm, as the paper
    for metric in ("collision", "intersection"):
        cells += [_num(record.metric(metric, h)) for h in HORIZON_KEYS]
    rel = " / ".join(
        _num(v, 1) for v in (record.rel_l2, record.rel_collision, record.rel_intersection)
    )
    tokens = "–" if record.kept_tokens is None else str(record.kept_tokens)
    return f"| {_name(record)} | {ratio} | {tokens} | " + " | ".join(cells) + f" | {rel} |"


def quality_table(results: EvalResults) -> list[str]:
    horizons = " | ".join(h.replace("avg", "Avg") for h in HORIZON_KEYS)
    lines = [
        "| Method | Pruned | Tokens | L2 (cm) "
        + horizons
        + " | Collision (%) "
        + horizons
        + " | Intersection (%) "
        + horizons
        + " | Relative L2 / Coll. / Inter. (%) |",
        "|" + "---|" * 16,
    ]
    for ref in results.references:
        lines.append(_quality_row(ref, "–"))
    unpruned = results.unpruned
    if unpruned is not None:
        lines.append(_quality_row(unpruned, "0 %"))
    for record in results.records:  # whole-frame probes: ratio 0, computed on their own
        if record.prune_ratio == 0 and record.shared_with is None and record is not unpruned:
            lines.append(_quality_row(record, "0 %"))
    ratios = sorted({r.prune_ratio for r in results.records if r.prune_ratio > 0})
    for ratio in ratios:
        keep = f"**Retain {100 * (1 - ratio):.0f} % tokens (↓{100 * ratio:.0f} %)**"
        lines.append(f"| {keep} |" + " |" * 15)
        for record in results.records:
            if record.prune_ratio == ratio:
                lines.append(_quality_row(record, f"{100 * ratio:.0f} %"))
    return lines


def efficiency_table(results: EvalResults) -> list[str]:
    unpruned = results.unpruned
    lines = [
        "| Method | Pruned | Kept / total tokens | Encoder ms | Pruner ms | Prefill ms | "
        "Decode ms (per plan) | Decode ms/token | Total ms | Encoder TFLOP | Pruner TFLOP | "
        "Prefill TFLOP | Prefill speed-up | Total speed-up |",
        "|" + "---|" * 14,
    ]
    rows = ([unpruned] if unpruned is not None else []) + [
        r for r in results.records if r.prune_ratio > 0
    ]
    for r in rows:
        prefill_up = total_up = None
        if unpruned is not None and r.prefill_ms and unpruned.prefill_ms:
            prefill_up = unpruned.prefill_ms / r.prefill_ms
        if unpruned is not None and r.total_ms and unpruned.total_ms:
            total_up = unpruned.total_ms / r.total_ms
        cells = [
            _name(r),
            f"{100 * r.prune_ratio:.0f} %",
            f"{r.kept_tokens} / {r.total_tokens}",
            _num(r.encoder_ms, 1),
            _num(r.pruner_ms, 2),
            _num(r.prefill_ms, 1),
            _num(r.decode_ms, 1),
            _num(r.decode_ms_per_token, 2),
            _num(r.total_ms, 1),
            _sig(r.encoder_tflops),
            _sig(r.pruner_tflops),
            _sig(r.prefill_tflops),
            "–" if prefill_up is None else f"{prefill_up:.2f}x",
            "–" if total_up is None else f"{total_up:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _interval_cell(data: dict | None) -> str:
    if data is None:
        return "– (no keyframe)"
    cell = (
        f"{100 * data['estimate']:+.1f} cm [{100 * data['low']:+.1f}, {100 * data['high']:+.1f}]"
    )
    if data.get("relative") is not None and data.get("relative_low") is not None:
        cell += (
            f" / {data['relative']:+.1f} % [{data['relative_low']:+.1f}, "
            f"{data['relative_high']:+.1f}]"
        )
    return cell + f" (n={data['samples']}, {data['scenes']} scenes)"


def discrimination_section(results: EvalResults) -> list[str]:
    disc = results.discrimination
    if not disc:
        return ["Not computed (no sample evaluated)."]
    lines = [
        f"**{disc.get('verdict', '')}**",
        "",
        "Differences of L2 Avg (worse minus better, cm and % of the better row) with 95 % "
        f"intervals from a bootstrap that resamples scenes ({disc.get('draws')} draws, paired: "
        "both rows see the same resampled scenes). Visible events: braking for a vehicle, red "
        "light, pedestrian or cyclist, and starting (see the breakdown below).",
        "",
        "| Comparison | Worse − better | All keyframes | Visible events |",
        "|---|---|---|---|",
    ]
    for name, entry in disc.items():
        if not isinstance(entry, dict) or "worse" not in entry:
            continue
        lines.append(
            f"| {name} | `{entry['worse']}` − `{entry['better']}` | "
            f"{_interval_cell(entry.get('all'))} | {_interval_cell(entry.get('visible_events'))} |"
        )
    return lines


EVENT_METRICS = {"l2_avg": 100.0, "collision_avg": 1.0}  # by_event key -> scale to cm / %


def events_table(results: EvalResults, metric: str = "l2_avg") -> list[str]:
    """A row per method, a column per event group: L2 Avg (cm) or collision Avg (%)."""
    scale = EVENT_METRICS[metric]
    computed = [r for r in results.records if r.shared_with is None]
    rows = list(results.references) + sorted(computed, key=lambda r: r.prune_ratio)
    groups: list[str] = []
    for record in rows:
        for group, cell in record.by_event.items():
            if cell.get("samples") and group not in groups:
                groups.append(group)
    if not groups:
        return ["No breakdown (no sample evaluated)."]
    counts = {g: next(r.by_event[g]["samples"] for r in rows if g in r.by_event) for g in groups}
    lines = [
        "| Method | Pruned | " + " | ".join(f"{g} (n={counts[g]})" for g in groups) + " |",
        "|" + "---|" * (len(groups) + 2),
    ]
    for record in rows:
        values = [record.by_event.get(g, {}).get(metric) for g in groups]
        cells = [_num(None if v is None else scale * v) for v in values]
        ratio = "–" if record.stage == "reference" else f"{100 * record.prune_ratio:.0f} %"
        lines.append(f"| {_name(record)} | {ratio} | " + " | ".join(cells) + " |")
    return lines


def targets_section(results: EvalResults) -> list[str]:
    lines = ["| Target | Status | Figures |", "|---|---|---|"]
    for t in results.targets:
        mark = {"met": "✅ met", "not met": "❌ not met"}.get(t["status"], "⚪ " + t["status"])
        lines.append(f"| {t['target']} | {mark} | {t['detail']} |")
    return lines


def render_markdown(results: EvalResults) -> str:
    """The whole results.md text."""
    meta = {k: v for k, v in results.metadata.items() if v is not None}
    meta = {"model": "n/a", "dataroot": "n/a", "version": "n/a", "split": "n/a", **meta}
    failures = {r.key: r.plan_failures for r in results.records if r.plan_failures}
    lines = [
        "# Open-loop evaluation",
        "",
        f"- model: `{meta.get('model')}`",
        f"- dataset: `{meta.get('dataroot')}` version `{meta.get('version')}`, split "
        f"`{meta.get('split')}`, {meta.get('samples')} samples",
        f"- machine: {meta.get('machine')}; torch {meta.get('torch')}, {meta.get('threads')} "
        f"threads, device `{meta.get('device')}`",
        f"- date: {meta.get('date')}; command: `{meta.get('command')}`",
        "- Convention: the paper's (Impromptu-VLA's evaluator). L2 in cm, cumulative means at "
        "1/2/3 s, Avg = their mean (ST-P3 / VAD, not UniAD); collision in % of steps (SparseDrive "
        "/ BEV-Planner boxes and headings; steps where the logged ego collides count 0); "
        "intersection in % of samples touching the road boundary at any step up to the horizon "
        "(BEV-Planner); see fastdrive_ros/eval/metrics.py. Relative = % of the unpruned value "
        "(lower is better). Reference point of trajectories, boxes and map: "
        f"{_reference_text(meta.get('reference'))}.",
        "- Failed plans are scored with the constant-velocity plan (what the node falls back to) "
        f"and counted: {failures or 'none'}.",
        *baseline_notes(results),
        f"- Ego inputs: `{meta.get('ego_inputs', 'full')}` (every row, references included; "
        "`minimal` = driving command and current speed only, the rest held at constant-velocity "
        "values, so CTRA equals constant velocity there by construction).",
        "- Ego-status MLP reference: "
        + (
            f"`{meta['ego_mlp']}`."
            if meta.get("ego_mlp")
            else f"**not evaluated**: {meta.get('ego_mlp_missing', 'none given')}."
        ),
        "",
        "## Can this benchmark tell token sets apart?",
        "",
        *discrimination_section(results),
        "",
        "## Planning quality (layout of FastDriveVLA Table 1)",
        "",
        *quality_table(results),
        "",
        "## L2 Avg (cm) by what the ego does in the next 3 s",
        "",
        "Labels (fastdrive_ros/eval/events.py), first that applies: `stopped` (< 0.5 m/s now and "
        "throughout), `starting` (< 2 m/s now, >= 1.5 m/s faster at 3 s), `braking_<cause>` "
        "(slowest future speed >= 1.5 m/s below now; the cause is the constraint the synthetic "
        "world recorded for its driver (synth/scenes/*.json `lead`) where the ego decelerates "
        "hardest in the next 3 s, `other` without a record), `turning` (heading change > 20 "
        "degrees by 3 s), else `steady`. Speeds come from the logged future positions. "
        f"Counts: {meta.get('event_counts', {})}.",
        "",
        *events_table(results),
        "",
        "Collision Avg (%) by the same groups (where a plan runs into what stands ahead; "
        "results written before it was recorded show –):",
        "",
        *events_table(results, "collision_avg"),
        "",
        "## Efficiency",
        "",
        "Times are medians over samples on this machine; the encoder runs on all tokens whatever "
        "the ratio; LLM-stage pruners (FastV, SparseVLM) select inside the prefill, so their "
        "pruner time is part of it. TFLOPs are analytic matmul counts from the model config.",
        "",
        *efficiency_table(results),
        "",
        "## Targets",
        "",
        *targets_section(results),
        "",
    ]
    return "\n".join(lines)


def _reference_text(reference: str | None) -> str:
    if reference == "lidar":
        return (
            "the LiDAR sensor in the current LiDAR frame (x forward, y left), as Impromptu-VLA / "
            "SparseDrive were trained and evaluated; the ego box sits 0.5 m ahead of it"
        )
    if reference == "rear_axle":
        return (
            "the rear axle (nuScenes ego_pose), what the compact model was trained on; the ego "
            "box sits 0.5 m ahead of it, 0.94 m further back than upstream's"
        )
    return "not recorded"


def baseline_notes(results: EvalResults) -> list[str]:
    """One line per evaluated baseline that deviates from its paper, naming each deviation."""
    names = {r.pruner for r in results.records}
    lines = []
    if "sparsevlm" in names:
        from fastdrive_ros.nn.baselines.sparsevlm import DEVIATIONS

        lines.append(
            "- SparseVLM follows its reference code (raters from the input embeddings, the "
            "pruning layer's own attention, top 30 % of the dropped tokens recycled into "
            "DPC-kNN cluster means) except: " + "; ".join(DEVIATIONS) + "."
        )
    return lines


def write_markdown(results: EvalResults, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_markdown(results), encoding="utf-8")
    return path
