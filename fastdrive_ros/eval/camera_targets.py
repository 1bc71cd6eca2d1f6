"""Do the cameras matter? Issue 8's targets over several held-out worlds and both ego settings.

Reads the results.json of `fastdrive eval` runs (each names its dataroot and its `ego_inputs` in
its metadata) and checks, per run:

- full ego inputs: the unpruned VLA no worse than the ego-only MLP (at most +5 % L2 Avg) and at
  least 10 % better than CTRA;
- minimal ego inputs: the unpruned VLA at least 10 % better than the ego MLP; the content effect
  (`shuffled` - own) at least +10 % on all keyframes and +25 % on the keyframes with a
  camera-visible event, each interval excluding 0; `anti_oracle` at 75 % pruned at least 10 %
  worse than `oracle_fg` at 75 %.

Then the pruning table in FastDriveVLA's Table 1 layout, per setting and ratio, averaged over the
worlds: each method's L2 / collision / intersection and where it lands between the oracle
(0 = as good as the K most-foreground tokens) and the anti-oracle (1 = as bad as background only).
A ranking means something only where the oracle and the anti-oracle themselves are apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastdrive_ros.eval.records import EvalResults

RANKED_METHODS: tuple[str, ...] = (
    "oracle_fg",
    "reconpruner",
    "fastv",
    "sparsevlm",
    "divprune",
    "vispruner",
    "random",
    "anti_oracle",
)
TABLE_RATIOS: tuple[float, ...] = (0.25, 0.5, 0.75)
# the rows the targets read: own tokens, the content probes, and the oracle pair at TARGET_RATIO
PROBE_METHODS: tuple[str, ...] = ("none", "shuffled", "no_images", "oracle_fg", "anti_oracle")
TARGET_RATIO = 0.75
# Positions are given only where the anti-oracle is at least this much worse than the oracle (share
# of the oracle's L2 Avg): below it the span is noise and a position divides by it.
MIN_ORACLE_SPAN = 0.01


@dataclass(frozen=True)
class Run:
    """One `fastdrive eval` result: which world, which ego-input setting."""

    world: str
    setting: str
    results: EvalResults

    @classmethod
    def load(cls, path: str | Path) -> Run:
        results = EvalResults.load(path)
        meta = results.metadata
        setting = meta.get("ego_inputs")
        if setting not in ("full", "minimal"):
            raise ValueError(f"{path}: metadata has no ego_inputs (an eval from before issue 8?)")
        world = Path(str(meta.get("dataroot", path))).name
        return cls(world=world, setting=str(setting), results=results)


@dataclass(frozen=True)
class TargetCheck:
    world: str
    setting: str
    target: str
    status: str  # "met", "not met" or "not measured"
    detail: str


# the columns of the references table: camera-free references, own tokens ("none"), the probes
REFERENCE_COLUMNS = ("constant_velocity", "ctra", "ego_mlp", "none", "shuffled", "no_images")


def _own(results: EvalResults, metric: str) -> float | None:
    return results.unpruned.metric(metric) if results.unpruned is not None else None


def _row_metric(
    results: EvalResults, name: str, ratio: float = 0.0, metric: str = "l2"
) -> float | None:
    """`metric` (L2 by default) of a reference row or of `name` at `ratio`."""
    record = results.reference(name) if ratio == 0.0 else None
    record = record or results.find(name, ratio)
    return None if record is None else record.metric(metric)


def _ratio_check(
    run: Run, target: str, mine: float | None, other: float | None, limit: float, *, at_most: bool
) -> TargetCheck:
    """Mine / other against `limit` (at_most: mine <= limit x other, else mine >= ...)."""
    if mine is None or other is None or other <= 0:
        return TargetCheck(run.world, run.setting, target, "not measured", "a row is missing")
    share = mine / other
    ok = share <= limit if at_most else share >= limit
    detail = f"{100 * mine:.1f} vs {100 * other:.1f} cm = {100 * share:.1f} %"
    return TargetCheck(run.world, run.setting, target, "met" if ok else "not met", detail)


def _interval_check(
    run: Run, target: str, entry: dict | None, subset: str, minimum_pct: float
) -> TargetCheck:
    data = None if entry is None else entry.get(subset)
    if data is None or data.get("relative") is None:
        return TargetCheck(run.world, run.setting, target, "not measured", "probe not evaluated")
    ok = data["relative"] >= minimum_pct and data["low"] > 0
    detail = (
        f"{data['relative']:+.1f} % [{data['relative_low']:+.1f}, {data['relative_high']:+.1f}]"
        f" ({100 * data['estimate']:+.1f} cm, {data['samples']} keyframes, "
        f"{data['scenes']} scenes)"
    )
    return TargetCheck(run.world, run.setting, target, "met" if ok else "not met", detail)


def check_run(run: Run) -> list[TargetCheck]:
    """Issue 8's targets for one run (its setting decides which apply)."""
    res = run.results
    own = _own(res, "l2")
    ego_mlp, ctra = _row_metric(res, "ego_mlp"), _row_metric(res, "ctra")
    if run.setting == "full":
        return [
            _ratio_check(run, "unpruned VLA <= 1.05 x ego_mlp", own, ego_mlp, 1.05, at_most=True),
            _ratio_check(run, "unpruned VLA <= 0.90 x ctra", own, ctra, 0.90, at_most=True),
        ]
    disc = res.discrimination
    return [
        _ratio_check(run, "unpruned VLA <= 0.90 x ego_mlp", own, ego_mlp, 0.90, at_most=True),
        _interval_check(
            run, "content effect >= +10 %, all", disc.get("content_effect"), "all", 10
        ),
        _interval_check(
            run,
            "content effect >= +25 %, visible events",
            disc.get("content_effect"),
            "visible_events",
            25,
        ),
        _interval_check(
            run,
            f"anti_oracle >= 1.10 x oracle_fg at {100 * TARGET_RATIO:.0f} %",
            disc.get(f"oracle_gap@{TARGET_RATIO:g}"),
            "all",
            10,
        ),
    ]


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept and len(kept) == len(values) else None


def ranking_rows(runs: Sequence[Run], ratio: float) -> list[dict[str, float | str | None]]:
    """Table rows at one ratio, averaged over `runs` (one setting): metrics and oracle position."""
    rows: list[dict[str, float | str | None]] = []
    for method in RANKED_METHODS:
        records = [r.results.find(method, ratio) for r in runs]
        if any(rec is None for rec in records):
            continue
        row: dict[str, float | str | None] = {"method": method}
        for metric in ("l2", "collision", "intersection"):
            for horizon in ("1s", "2s", "3s", "avg"):
                row[f"{metric}_{horizon}"] = _mean(
                    [rec.metric(metric, horizon) for rec in records]  # type: ignore[union-attr]
                )
        rows.append(row)
    by_name = {row["method"]: row for row in rows}
    best, worst = by_name.get("oracle_fg"), by_name.get("anti_oracle")
    for row in rows:
        row["position"] = None
        if best and worst and None not in (best["l2_avg"], worst["l2_avg"], row["l2_avg"]):
            span = float(worst["l2_avg"]) - float(best["l2_avg"])  # type: ignore[arg-type]
            if span >= MIN_ORACLE_SPAN * float(best["l2_avg"]):  # type: ignore[arg-type]
                row["position"] = (float(row["l2_avg"]) - float(best["l2_avg"])) / span  # type: ignore[arg-type]
    return rows


def _cell(value: float | str | None, scale: float = 1.0, digits: int = 2) -> str:
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    return f"{scale * value:.{digits}f}"


def _scenes(run: Run) -> str:
    scenes = run.results.metadata.get("scenes")
    return "scenes not recorded" if scenes is None else f"{scenes} scenes"


def render_markdown(runs: Sequence[Run], table_runs: Sequence[Run] | None = None) -> str:
    """The targets table over `runs`, per setting the pruning table over `table_runs`.

    `table_runs` (default: `runs`) hold every method at every ratio, perhaps on fewer scenes
    than the probe rows that decide the targets; the table places them between oracle_fg and
    anti_oracle.
    """
    lines = [
        "## Do the cameras matter? (issue 8 targets)",
        "",
        "Worlds: "
        + ", ".join(sorted({f"{r.world} ({_scenes(r)})" for r in runs}))
        + ". L2 in cm; intervals are "
        "95 % scene-bootstrap intervals (eval/discrimination.py).",
        "",
        "| World | Ego inputs | Target | Status | Measured |",
        "|---|---|---|---|---|",
    ]
    checks = [c for run in runs for c in check_run(run)]
    for c in checks:
        lines.append(f"| {c.world} | {c.setting} | {c.target} | {c.status} | {c.detail} |")
    met = sum(c.status == "met" for c in checks)
    lines += ["", f"{met} of {len(checks)} target checks met.", ""]
    for metric, unit, scale, digits in (
        ("l2", "L2 Avg (cm)", 100, 1),
        ("collision", "Collision Avg (%)", 1, 2),
    ):
        lines += [
            f"| {unit}: World | Ego inputs | CV | CTRA | ego MLP | VLA (own tokens) | shuffled "
            "| no images |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            res = run.results
            cells = [
                _own(res, metric) if name == "none" else _row_metric(res, name, metric=metric)
                for name in REFERENCE_COLUMNS
            ]
            lines.append(
                f"| {run.world} | {run.setting} | "
                + " | ".join(_cell(v, scale, digits) for v in cells)
                + " |"
            )
        lines += [""] if metric == "l2" else []
    for setting in ("full", "minimal"):
        chosen = [r for r in (table_runs or runs) if r.setting == setting]
        if not chosen:
            continue
        worlds = ", ".join(f"{r.world} ({_scenes(r)})" for r in chosen)
        lines += [
            "",
            f"### Pruning between oracle and anti-oracle, ego inputs {setting} "
            f"(mean of {worlds}; position 0 = oracle_fg, 1 = anti_oracle)",
            "",
            "| Pruned | Method | L2 (cm) 1s | 2s | 3s | Avg | Collision (%) Avg | "
            "Intersection (%) Avg | Position |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for ratio in TABLE_RATIOS:
            rows = ranking_rows(chosen, ratio)
            if rows and all(row["position"] is None for row in rows):
                lines.append(
                    f"| {100 * ratio:.0f} % | (no position: anti_oracle is not "
                    f"{100 * MIN_ORACLE_SPAN:.0f} % worse than oracle_fg, so no ranking here "
                    "means anything) | | | | | | | |"
                )
            for row in rows:
                lines.append(
                    f"| {100 * ratio:.0f} % | {row['method']} | "
                    + " | ".join(_cell(row[f"l2_{h}"], 100, 1) for h in ("1s", "2s", "3s", "avg"))
                    + f" | {_cell(row['collision_avg'])} | {_cell(row['intersection_avg'])} | "
                    + f"{_cell(row['position'])} |"
                )
    return "\n".join(lines) + "\n"
