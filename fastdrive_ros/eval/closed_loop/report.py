"""OUT/results.json, OUT/results.md and OUT/closed_loop.png of a closed-loop run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastdrive_ros.eval.closed_loop.runner import NO_IMAGES, LoopSettings, RowResult
from fastdrive_ros.eval.closed_loop.score import COMPLETED_RC, SCORE_FORMULA


def _ci(pair: tuple[float, float], fmt: str) -> str:
    return f"[{fmt.format(pair[0])}, {fmt.format(pair[1])}]"


def targets(rows: list[dict]) -> list[dict]:
    """The issue's two closed-loop targets, checked on the records (status pass / fail / n/a)."""
    out = []
    unpruned = next(
        (
            r
            for r in rows
            if r["pruner"] == "none" or (r["ratio"] == 0.0 and r["pruner"] != NO_IMAGES)
        ),
        None,
    )
    blind = next((r for r in rows if r["pruner"] == NO_IMAGES), None)
    if unpruned is None:
        out.append(
            {
                "target": "unpruned completes >= 90 % of routes",
                "status": "n/a",
                "detail": "no unpruned row (none, or a pruner at ratio 0)",
            }
        )
    else:
        frac = unpruned["completed_fraction"]
        out.append(
            {
                "target": "unpruned completes >= 90 % of routes",
                "status": "pass" if frac >= 0.9 else "fail",
                "detail": f"{unpruned['pruner']}@{unpruned['ratio']:g}: {100 * frac:.0f} % of "
                f"{unpruned['routes_n']} routes with RC >= {COMPLETED_RC}",
            }
        )
    if unpruned is None or blind is None:
        out.append(
            {
                "target": "no_images has >= 2x the infractions of unpruned",
                "status": "n/a",
                "detail": "needs both an unpruned and a no_images row",
            }
        )
    else:
        a, b = unpruned["infractions"], blind["infractions"]
        ok = b >= 2 * a and b > 0
        out.append(
            {
                "target": "no_images has >= 2x the infractions of unpruned",
                "status": "pass" if ok else "fail",
                "detail": f"no_images {b} vs unpruned {a} (collisions + red-light violations)",
            }
        )
    return out


def write_results(
    out: Path,
    settings: LoopSettings,
    expert: RowResult,
    results: list[RowResult],
    meta: dict,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.record() for r in results]
    doc = {
        "settings": settings.__dict__ | meta,
        "score_formula": SCORE_FORMULA,
        "completed_rc": COMPLETED_RC,
        "expert": expert.record(),
        "rows": rows,
        "targets": targets(rows),
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=float), encoding="utf-8")
    (out / "results.md").write_text(markdown(doc), encoding="utf-8")
    plot(out / "closed_loop.png", [expert.record(), *rows])
    return doc


def markdown(doc: dict) -> str:
    s = doc["settings"]
    lines = [
        "# Closed-loop driving in the synthetic world",
        "",
        f"Seed {s['seed']}, {s['routes']} routes x {s['seconds']:g} s, planning at "
        f"{s['plan_hz']:g} Hz, {'realtime' if s['realtime'] else 'deterministic'} mode, "
        f"model `{s.get('model', '?')}`, backend {s.get('backend', '?')}.",
        "",
        "| row | kept tokens | RC mean [95 % CI] | completed | collisions (veh/ped/cyc/static) "
        "| red lights | infractions/route [CI] | off-road | TTC<1s (s) | jerk RMS | score [CI] |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [doc["expert"], *doc["rows"]]:
        label = (
            r["pruner"]
            if r["pruner"] in ("expert", "none", NO_IMAGES)
            else (f"{r['pruner']} @ {r['ratio']:g}")
        )
        k = r["collisions_by_kind"]
        lines.append(
            f"| {label} | {r['mean_kept_tokens']:.0f} | {r['route_completion']:.2f} "
            f"{_ci(r['route_completion_ci'], '{:.2f}')} | {100 * r['completed_fraction']:.0f} % "
            f"| {r['collisions']} ({k['vehicle']}/{k['pedestrian']}/{k['cyclist']}/{k['static']}) "
            f"| {r['red_light_violations']} | {r['infractions'] / max(1, r['routes_n']):.2f} "
            f"{_ci(r['infractions_per_route_ci'], '{:.2f}')} | {r['offroad_events']} "
            f"| {r['ttc_below_s']:.1f} | {r['jerk_rms']:.2f} | {r['score']:.1f} "
            f"{_ci(r['score_ci'], '{:.1f}')} |"
        )
    lines += [
        "",
        "expert = the world's own driver (reads the world, not the cameras): the route-completion "
        "reference and a sanity row for the infraction rules.",
        "",
        f"`{doc['score_formula']}`; a route is completed when RC >= {doc['completed_rc']}.",
        "",
        "## Targets",
        "",
    ]
    lines += [f"- [{t['status']}] {t['target']}: {t['detail']}" for t in doc["targets"]]
    lines += [
        "",
        "## Per route",
        "",
        "| row | route | events | RC | infractions | score |",
        "|---|---|---|---|---|---|",
    ]
    for r in [doc["expert"], *doc["rows"]]:
        for q in r["routes"]:
            lines.append(
                f"| {r['pruner']}@{r['ratio']:g} | {q['route']} | {', '.join(q['events']) or '-'} "
                f"| {q['route_completion']:.2f} | {q['infractions']} | {q['score']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[dict]) -> None:
    """Score, route completion and infractions per route for each row, with 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        r["pruner"]
        if r["pruner"] in ("expert", "none", NO_IMAGES)
        else f"{r['pruner']}\n@{r['ratio']:g}"
        for r in rows
    ]
    fig, axes = plt.subplots(1, 3, figsize=(4 + 1.6 * len(rows), 4), constrained_layout=True)
    x = np.arange(len(rows))
    for ax, key, ci, title in (
        (axes[0], "score", "score_ci", "driving score"),
        (axes[1], "route_completion", "route_completion_ci", "route completion"),
        (axes[2], None, "infractions_per_route_ci", "infractions per route"),
    ):
        values = np.array(
            [r[key] if key else r["infractions"] / max(1, r["routes_n"]) for r in rows]
        )
        lo = np.array([r[ci][0] for r in rows])
        hi = np.array([r[ci][1] for r in rows])
        ax.bar(x, values, color="tab:blue", alpha=0.8)
        ax.errorbar(x, values, yerr=[values - lo, hi - values], fmt="none", ecolor="k", capsize=3)
        ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
