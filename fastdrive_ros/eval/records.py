"""The results of one evaluation run: one record per (pruner, ratio), references, metadata, JSON.

Units (also written into the JSON's metadata so a reader never guesses): L2 in metres; collision,
intersection and off-road in percent of counted steps; times in milliseconds, the median over
samples; `decode_ms` is the whole decode of one plan (all generated tokens), `decode_ms_per_token`
that divided by the tokens generated (None when the planner reads waypoints from a regression
head and generates none); FLOPs in TFLOP (analytic, see flops.py); `rel_*` = 100 x value /
unpruned value (100 = as good as unpruned; lower is better for every metric).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fastdrive_ros.eval.metrics import HORIZONS_S, METRIC_NAMES, MetricSummary

SCHEMA_VERSION = 1
HORIZON_KEYS: tuple[str, ...] = tuple(f"{s}s" for s in HORIZONS_S) + ("avg",)
UNITS = {
    "l2": "m",
    "collision": "% of counted steps",
    "intersection": "% of counted steps",
    "offroad": "% of counted steps",
    "times": "ms, median over samples",
    "decode_ms": "ms per plan (all generated tokens)",
    "decode_ms_per_token": "ms per generated token",
    "flops": "TFLOP, analytic matmul count",
    "rel": "% of the unpruned value",
}


@dataclass
class EvalRecord:
    """One row of the results: a method at a prune ratio (or a reference planner).

    `stage` is "encoder" / "llm" for pruners, "none" for the unpruned model and "reference" for the
    constant-velocity and logged (ground-truth) trajectories. `shared_with` names the record whose
    numbers these are when they were computed once and referenced (every pruner at ratio 0).
    """

    pruner: str
    stage: str
    prune_ratio: float
    kept_tokens: int | None
    total_tokens: int | None
    samples: int
    plan_failures: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    counted_steps: dict[str, int] = field(default_factory=dict)
    rel_l2: float | None = None
    rel_collision: float | None = None
    rel_intersection: float | None = None
    encoder_ms: float | None = None
    pruner_ms: float | None = None
    prefill_ms: float | None = None
    decode_ms: float | None = None
    decode_ms_per_token: float | None = None
    generated_tokens: float | None = None
    total_ms: float | None = None
    encoder_tflops: float | None = None
    pruner_tflops: float | None = None
    prefill_tflops: float | None = None
    shared_with: str | None = None
    # L2 Avg per group of what the ego does next (eval/events.py): {group: {samples, l2_avg}}
    by_event: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.pruner}@{self.prune_ratio:g}"

    @property
    def keep_ratio(self) -> float:
        return 1.0 - self.prune_ratio

    def metric(self, name: str, horizon: str = "avg") -> float | None:
        return self.metrics.get(name, {}).get(horizon)

    def set_metrics(self, summary: MetricSummary) -> None:
        self.metrics = {name: dict(summary.values[name]) for name in METRIC_NAMES}
        self.counted_steps = dict(summary.counts)

    def to_json(self) -> dict[str, Any]:
        """Flat dict: the nested metrics become l2_1s ... offroad_avg, plus keep_ratio."""
        out = {k: v for k, v in asdict(self).items() if k not in ("metrics", "counted_steps")}
        for name in METRIC_NAMES:
            for horizon in HORIZON_KEYS:
                out[f"{name}_{horizon}"] = self.metric(name, horizon)
        out["keep_ratio"] = self.keep_ratio
        out["counted_steps"] = dict(self.counted_steps)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalRecord:
        names = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in names})
        record.metrics = {
            name: {h: data.get(f"{name}_{h}") for h in HORIZON_KEYS} for name in METRIC_NAMES
        }
        record.counted_steps = dict(data.get("counted_steps", {}))
        return record


def relative(value: float | None, reference: float | None) -> float | None:
    """100 x value / reference; None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return 100.0 * value / reference


@dataclass
class EvalResults:
    """Everything `fastdrive eval` measured; `records` in (pruner, ratio) order."""

    records: list[EvalRecord]
    references: list[EvalRecord]
    metadata: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)
    # content effect and oracle gap with scene-bootstrap intervals (eval/discrimination.py)
    discrimination: dict[str, Any] = field(default_factory=dict)

    def find(self, pruner: str, prune_ratio: float) -> EvalRecord | None:
        for record in self.records + self.references:
            if record.pruner == pruner and abs(record.prune_ratio - prune_ratio) < 1e-9:
                return record
        return None

    @property
    def unpruned(self) -> EvalRecord | None:
        return next(
            (r for r in self.records if r.prune_ratio == 0 and r.shared_with is None), None
        )

    def reference(self, name: str) -> EvalRecord | None:
        return next((r for r in self.references if r.pruner == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "units": UNITS,
            "metadata": self.metadata,
            "records": [r.to_json() for r in self.records],
            "references": [r.to_json() for r in self.references],
            "targets": self.targets,
            "discrimination": self.discrimination,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EvalResults:
        data = json.loads(Path(path).read_text())
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{path}: results schema {data.get('schema_version')!r}, this code reads "
                f"{SCHEMA_VERSION}: re-run `fastdrive eval`"
            )
        return cls(
            records=[EvalRecord.from_json(r) for r in data["records"]],
            references=[EvalRecord.from_json(r) for r in data["references"]],
            metadata=data["metadata"],
            targets=data.get("targets", []),
            discrimination=data.get("discrimination", {}),
        )
