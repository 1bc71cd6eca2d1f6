"""The open-loop evaluation loop: each sample once through the encoder, every method on its tokens.

Per sample: load the six images once, preprocess once, run the vision encoder once, then for each
(pruner, ratio) select tokens (encoder-stage pruners) or hand all tokens and the budget to the
planner (LLM-stage pruners: FastV, SparseVLM select inside the prefill), plan, and score. The
unpruned model (ratio 0) is computed once and referenced by every pruner's ratio-0 row. Each stage
is timed on its own (encoder, selection, prefill, decode), so reusing the encoder output does not
flatter any method: every row reports the encoder time it would pay in the node.

Failed plans (PlanFailure) are scored with the constant-velocity plan, which is what a node can
fall back to, and counted per reason, so every method is scored on the same samples.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from fastdrive_ros.core_types import PlanOk
from fastdrive_ros.data.types import KeyframeSample
from fastdrive_ros.eval.constant_velocity import constant_velocity_plan
from fastdrive_ros.eval.flops import TFLOP, llm_prefill_flops, reconpruner_flops, vision_flops
from fastdrive_ros.eval.images import load_camera_images, resize_for_display
from fastdrive_ros.eval.metrics import GroundTruth, MetricAccumulator
from fastdrive_ros.eval.model_api import EvalModel, ModelShapes, PlanOutput
from fastdrive_ros.eval.overlays import render_overlay
from fastdrive_ros.eval.records import EvalRecord, EvalResults, relative
from fastdrive_ros.nn.selection import Selection, SelectorName, VisualTokens, keep_count

PRUNER_NAMES: tuple[str, ...] = get_args(SelectorName)
UNPRUNED = "none"


def check_methods(pruners: Sequence[str], ratios: Sequence[float]) -> tuple[list, list]:
    """Validate names and ratios once; returns them de-duplicated, in the given order."""
    unknown = [p for p in pruners if p not in PRUNER_NAMES]
    if unknown or not pruners:
        raise ValueError(
            f"unknown pruner(s) {unknown or '(none given)'}: choose from {', '.join(PRUNER_NAMES)}"
        )
    bad = [r for r in ratios if not 0.0 <= float(r) < 1.0]
    if bad or not ratios:
        raise ValueError(f"prune ratios must be in [0, 1), got {list(ratios)}")
    return list(dict.fromkeys(pruners)), sorted({float(r) for r in ratios})


@dataclass
class _Run:
    """Accumulates one (pruner, ratio) over samples."""

    pruner: str
    stage: str
    ratio: float
    metrics: MetricAccumulator = field(default_factory=MetricAccumulator)
    times: dict[str, list[float]] = field(default_factory=dict)
    kept: list[int] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)
    prefill_flops: list[float] = field(default_factory=list)
    pruner_flops: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)

    def time(self, stage: str, ms: float | None) -> None:
        if ms is not None:
            self.times.setdefault(stage, []).append(float(ms))

    def median(self, stage: str) -> float | None:
        values = self.times.get(stage)
        return float(np.median(values)) if values else None


@dataclass(frozen=True)
class OverlaySpec:
    """Which samples get Figure-5 overlays, at which ratio, written where."""

    folder: Path
    ratio: float
    sample_indices: tuple[int, ...] = (0,)


def _timed(model: EvalModel, fn: Callable[[], Any]) -> tuple[Any, float]:
    model.synchronize()
    start = time.perf_counter()
    out = fn()
    model.synchronize()
    return out, 1000.0 * (time.perf_counter() - start)


def _gt_trajectory(sample: KeyframeSample) -> np.ndarray:
    xy = np.asarray(sample.future_xy, dtype=np.float64).copy()
    xy[~np.isfinite(xy).all(axis=1)] = 0.0  # invalid tail steps never count
    return xy


class Evaluator:
    """Runs methods over samples; `add(sample)` per sample, then `results(metadata)`."""

    def __init__(
        self,
        *,
        model: EvalModel,
        pruners: Sequence[str],
        ratios: Sequence[float],
        seed: int = 0,
        overlay: OverlaySpec | None = None,
    ) -> None:
        pruners, ratios = check_methods(pruners, ratios)
        self.model = model
        self.overlay = overlay
        self._selectors = {p: model.selector(p, seed=seed) for p in pruners if p != UNPRUNED}
        self._runs: dict[tuple[str, float], _Run] = {(UNPRUNED, 0.0): _Run(UNPRUNED, "none", 0.0)}
        for pruner in self._selectors:
            for ratio in ratios:
                if ratio > 0:
                    stage = model.selector_stage(pruner)
                    self._runs[(pruner, ratio)] = _Run(pruner, stage, ratio)
        self._ratios = ratios
        # the constant-velocity plan and the logged trajectory itself, scored like the methods
        self._references = {
            "constant_velocity": MetricAccumulator(),
            "ground_truth": MetricAccumulator(),
        }
        self.samples = 0

    @property
    def plans_per_sample(self) -> int:
        return len(self._runs)

    def add(self, sample: KeyframeSample) -> None:
        """Evaluate every method on one sample."""
        model = self.model
        truth = GroundTruth.from_sample(sample)
        cv_plan = constant_velocity_plan(sample.ego)
        self._references["constant_velocity"].add(truth.score(cv_plan))
        self._references["ground_truth"].add(truth.score(_gt_trajectory(sample)))
        images = load_camera_images(sample, model.camera_names)
        with torch.inference_mode():
            pixels = model.preprocess(torch.from_numpy(images))
            visual, encoder_ms = _timed(model, lambda: model.encode(pixels))
        n_tokens = int(visual.tokens.shape[0])
        everything = Selection(kept_index=torch.arange(n_tokens, device=visual.tokens.device))
        overlays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for (pruner, ratio), run in self._runs.items():
            with torch.inference_mode():
                output, planned, kept, n_kept, select_ms = self._plan_one(
                    run, visual, everything, sample, cv_plan
                )
            run.metrics.add(truth.score(planned))
            run.kept.append(n_kept)
            run.totals.append(n_tokens)
            self._account(run, output, visual, sample, encoder_ms, select_ms)
            if self._wants_overlay(pruner, ratio) and kept is not None:
                overlays[pruner] = (kept.cpu().numpy(), planned)
        if overlays and self.overlay is not None:
            self._render_overlays(sample, images, visual, overlays)
        self.samples += 1

    def _plan_one(
        self,
        run: _Run,
        visual: VisualTokens,
        everything: Selection,
        sample: KeyframeSample,
        cv_plan: np.ndarray,
    ) -> tuple[PlanOutput, np.ndarray, torch.Tensor | None, int, float | None]:
        """(output, planned (6, 2), kept index if known, kept count, selection ms)."""
        model, n_tokens = self.model, int(visual.tokens.shape[0])
        select_ms: float | None = None
        if run.pruner == UNPRUNED:
            output = model.plan(visual, everything, sample.ego)
            kept, n_kept = everything.kept_index, n_tokens
        elif run.stage == "encoder":
            keep = keep_count(n_tokens, run.ratio)
            selection, select_ms = _timed(
                model, lambda: self._selectors[run.pruner].select(visual, keep)
            )
            output = model.plan(visual, selection, sample.ego)
            kept, n_kept = selection.kept_index, int(selection.kept_index.numel())
        else:  # LLM-stage: the planner selects inside its prefill
            keep = keep_count(n_tokens, run.ratio)
            output = model.plan(
                visual, everything, sample.ego, llm_selector=self._selectors[run.pruner], keep=keep
            )
            kept = output.kept_index
            n_kept = keep if kept is None else int(kept.numel())
            select_ms = output.result.timings_ms.get("select")
        result = output.result
        if isinstance(result, PlanOk):
            planned = np.asarray(result.waypoints, dtype=np.float64)
        else:
            planned = cv_plan
            run.failures[result.reason] += 1
        return output, planned, kept, n_kept, select_ms

    def _account(
        self,
        run: _Run,
        output: PlanOutput,
        visual: VisualTokens,
        sample: KeyframeSample,
        encoder_ms: float,
        select_ms: float | None,
    ) -> None:
        timings = output.result.timings_ms
        prefill, decode = timings.get("prefill"), timings.get("decode")
        run.time("encoder", encoder_ms)
        run.time("pruner", select_ms)
        run.time("prefill", prefill)
        run.time("decode", decode)
        generated = output.result.generated_tokens if isinstance(output.result, PlanOk) else 0
        run.generated.append(int(generated))
        if generated and decode is not None:
            run.time("decode_per_token", decode / generated)
        run.time("total", encoder_ms + (select_ms or 0.0) + (prefill or 0.0) + (decode or 0.0))
        shapes: ModelShapes = self.model.shapes
        text = self.model.text_tokens(sample.ego)
        visual_tokens = run.kept[-1] if output.tokens_per_layer is None else None
        lengths = (
            [visual_tokens + text] * shapes.text.num_hidden_layers
            if visual_tokens is not None
            else list(output.tokens_per_layer)
        )
        run.prefill_flops.append(llm_prefill_flops(shapes.text, lengths)["total"] / TFLOP)
        if run.pruner == "reconpruner" and shapes.pruner is not None:
            p = shapes.pruner
            run.pruner_flops.append(
                reconpruner_flops(
                    hidden_size=p.hidden_size,
                    num_heads=p.num_heads,
                    num_kv_heads=p.num_kv_heads,
                    intermediate_size=p.intermediate_size,
                    tokens_per_camera=visual.tokens_per_camera,
                )
                / TFLOP
            )

    def _wants_overlay(self, pruner: str, ratio: float) -> bool:
        spec = self.overlay
        return (
            spec is not None
            and self.samples in spec.sample_indices
            and pruner != UNPRUNED
            and abs(ratio - spec.ratio) < 1e-9
        )

    def _render_overlays(
        self,
        sample: KeyframeSample,
        images: np.ndarray,
        visual: VisualTokens,
        overlays: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        spec = self.overlay
        assert spec is not None
        spec.folder.mkdir(parents=True, exist_ok=True)
        shown = resize_for_display(images, self.model.image_size)
        front = next((c.calibration for c in sample.cameras if c.channel == "CAM_FRONT"), None)
        grid = visual.grid_thw.cpu().numpy()
        for pruner, (kept, planned) in overlays.items():
            render_overlay(
                images=list(shown),
                camera_names=self.model.camera_names,
                grid_thw=grid,
                kept_index=kept,
                planned_xy=planned,
                gt_xy=_gt_trajectory(sample),
                front_calibration=front,
                title=(
                    f"{pruner}, {100 * spec.ratio:.0f} % pruned ({kept.size}/"
                    f"{visual.tokens.shape[0]} tokens kept), sample {sample.token} "
                    f"({sample.scene_name})"
                ),
                path=spec.folder / f"{sample.token}_{pruner}.png",
            )

    def results(self, metadata: dict[str, Any]) -> EvalResults:
        """The records (every requested (pruner, ratio), ratio 0 referencing the unpruned run)."""
        encoder_tflops = (
            vision_flops(
                self.model.shapes.vision,
                self.model.image_size,
                cameras=len(self.model.camera_names),
            )["total"]
            / TFLOP
        )
        built = {key: self._record(run, encoder_tflops) for key, run in self._runs.items()}
        unpruned = built[(UNPRUNED, 0.0)]
        records = [unpruned]
        for pruner in self._selectors:
            for ratio in self._ratios:
                if ratio == 0:
                    shared = EvalRecord.from_json(unpruned.to_json())
                    shared.pruner, shared.stage = pruner, self.model.selector_stage(pruner)
                    shared.shared_with = unpruned.key
                    records.append(shared)
                else:
                    records.append(built[(pruner, ratio)])
        for record in records:
            record.rel_l2 = relative(record.metric("l2"), unpruned.metric("l2"))
            record.rel_collision = relative(
                record.metric("collision"), unpruned.metric("collision")
            )
            record.rel_intersection = relative(
                record.metric("intersection"), unpruned.metric("intersection")
            )
        references = []
        for name, acc in self._references.items():
            ref = EvalRecord(
                pruner=name,
                stage="reference",
                prune_ratio=0.0,
                kept_tokens=None,
                total_tokens=None,
                samples=acc.samples,
            )
            ref.set_metrics(acc.summary())
            ref.rel_l2 = relative(ref.metric("l2"), unpruned.metric("l2"))
            references.append(ref)
        return EvalResults(records=records, references=references, metadata=metadata)

    def _record(self, run: _Run, encoder_tflops: float) -> EvalRecord:
        record = EvalRecord(
            pruner=run.pruner,
            stage=run.stage,
            prune_ratio=run.ratio,
            kept_tokens=int(np.median(run.kept)) if run.kept else None,
            total_tokens=int(np.median(run.totals)) if run.totals else None,
            samples=run.metrics.samples,
            plan_failures=sum(run.failures.values()),
            failure_reasons=dict(run.failures),
            encoder_ms=run.median("encoder"),
            pruner_ms=run.median("pruner"),
            prefill_ms=run.median("prefill"),
            decode_ms=run.median("decode"),
            decode_ms_per_token=run.median("decode_per_token"),
            generated_tokens=float(np.mean(run.generated)) if run.generated else None,
            total_ms=run.median("total"),
            encoder_tflops=encoder_tflops,
            pruner_tflops=float(np.mean(run.pruner_flops)) if run.pruner_flops else None,
            prefill_tflops=float(np.mean(run.prefill_flops)) if run.prefill_flops else None,
        )
        record.set_metrics(run.metrics.summary())
        return record
