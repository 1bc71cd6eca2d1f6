"""The open-loop evaluation loop: each sample once through the encoder, every method on its tokens.

Per sample: load the six images once, preprocess once, run the vision encoder once, then for each
(pruner, ratio) select tokens (encoder-stage pruners) or hand all tokens and the budget to the
planner (LLM-stage pruners: FastV, SparseVLM select inside the prefill), plan, and score. The
unpruned model (ratio 0) is computed once and referenced by every pruner's ratio-0 row. Each stage
is timed on its own (encoder, selection, prefill, decode), so reusing the encoder output does not
flatter any method: every row reports the encoder time it would pay in the node.

Failed plans (PlanFailure) are scored with the constant-velocity plan, which is what a node can
fall back to, and counted per reason, so every method is scored on the same samples.

Every plan, references included, reads the ego state as the `ego_inputs` setting allows
(`restrict_ego`: "full" or "minimal"). Probes (nn/probes.py) run behind the same selection
interface and K: the harness fills what they read (ground-truth foreground share per token from
the sample's nuScenes-FG masks; the paired scene's tokens, eval/pairing.py). Per-sample step
errors of every row are kept for the scene bootstrap (eval/discrimination.py) and the breakdown
by what the ego does next (eval/events.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from fastdrive_ros.core_types import (
    EGO_INPUTS,
    PLAN_STEPS,
    EgoInputs,
    EgoState,
    PlanOk,
    restrict_ego,
)
from fastdrive_ros.data.types import KeyframeSample
from fastdrive_ros.eval.constant_velocity import constant_velocity_plan
from fastdrive_ros.eval.discrimination import by_event, discrimination
from fastdrive_ros.eval.events import WorldRecords, label_event
from fastdrive_ros.eval.flops import TFLOP, llm_prefill_flops, reconpruner_flops, vision_flops
from fastdrive_ros.eval.images import load_camera_images, resize_for_display
from fastdrive_ros.eval.metrics import GroundTruth, MetricAccumulator
from fastdrive_ros.eval.model_api import EvalModel, ModelShapes, PlanOutput
from fastdrive_ros.eval.overlays import render_overlay
from fastdrive_ros.eval.records import EvalRecord, EvalResults, relative
from fastdrive_ros.nn.ctra import ctra_plan
from fastdrive_ros.nn.frame_memory import FrameMemory, FrameSlot
from fastdrive_ros.nn.probes import FG_SHARE, PARTNER_TOKENS, WHOLE_FRAME_PROBES
from fastdrive_ros.nn.registry import EVAL_SELECTOR_NAMES
from fastdrive_ros.nn.selection import Selection, VisualTokens, keep_count

PRUNER_NAMES: tuple[str, ...] = EVAL_SELECTOR_NAMES
UNPRUNED = "none"
ORACLE_PROBES: tuple[str, ...] = ("oracle_fg", "anti_oracle")


def check_methods(pruners: Sequence[str], ratios: Sequence[float]) -> tuple[list, list]:
    """Validate names and ratios once; returns them de-duplicated, in the given order.

    The whole-frame probes (shuffled, no_images) exist at ratio 0 only: asking for them without
    ratio 0 is an error; at the other ratios they are simply not run.
    """
    unknown = [p for p in pruners if p not in PRUNER_NAMES]
    if unknown or not pruners:
        raise ValueError(
            f"unknown pruner(s) {unknown or '(none given)'}: choose from {', '.join(PRUNER_NAMES)}"
        )
    bad = [r for r in ratios if not 0.0 <= float(r) < 1.0]
    if bad or not ratios:
        raise ValueError(f"prune ratios must be in [0, 1), got {list(ratios)}")
    whole = [p for p in pruners if p in WHOLE_FRAME_PROBES]
    if whole and not any(float(r) == 0.0 for r in ratios):
        raise ValueError(
            f"{', '.join(whole)} replace or remove the whole frame and are defined at prune ratio "
            "0 only: add 0 to --ratios"
        )
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
    l2_steps: list[np.ndarray] = field(default_factory=list)  # per sample (6,), NaN = not counted
    collision_steps: list[np.ndarray] = field(default_factory=list)  # per sample (6,) 0 / 1 / NaN
    # what this method's planner saw at the keyframes before (its own selections, like the node)
    memory: FrameMemory = field(default_factory=FrameMemory)

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


def _score(run: _Run, truth: GroundTruth, planned: np.ndarray) -> None:
    outcome = truth.score(planned)
    run.metrics.add(outcome)
    run.l2_steps.append(outcome.l2)
    run.collision_steps.append(outcome.collision)


def _breakdown(run: _Run, events: Sequence[str]) -> dict[str, dict[str, Any]]:
    """L2 and collision Avg per event group of one run's samples."""
    return by_event(
        np.array(run.l2_steps).reshape(-1, PLAN_STEPS),
        events,
        np.array(run.collision_steps).reshape(-1, PLAN_STEPS),
    )


def token_fg_share(
    sample: KeyframeSample,
    camera_names: Sequence[str],
    visual: VisualTokens,
    image_size: tuple[int, int],
) -> np.ndarray:
    """[N] ground-truth foreground share of each merged token's cell, cameras in model order.

    Each camera's nuScenes-FG mask is resized (nearest) to the model's input size and averaged
    over the token cells of its grid, exactly as the ReconPruner's training targets are.
    """
    from fastdrive_ros.train.images import cell_fraction, read_label

    by_name = {c.channel: c for c in sample.cameras}
    height, width = image_size
    parts = []
    for name, (_, h, w) in zip(camera_names, visual.grid_thw.tolist()):
        camera = by_name.get(name)
        if camera is None or camera.fg_mask is None:
            raise ValueError(
                f"oracle_fg / anti_oracle need a nuScenes-FG mask for every camera; {name} of "
                f"sample {sample.token} has none: use the synthetic world (it writes exact masks) "
                "or build them with `fastdrive masks` (pass --mask-root if they are elsewhere)"
            )
        unit = height // (int(h) // 2)
        if unit * (int(h) // 2) != height or unit * (int(w) // 2) != width:
            raise ValueError(f"image size {image_size} does not tile the token grid {h}x{w}")
        mask = read_label(str(camera.fg_mask), (height, width), what="foreground mask")
        parts.append(cell_fraction(mask, unit))
    return np.concatenate(parts).astype(np.float32)


def _gt_trajectory(sample: KeyframeSample) -> np.ndarray:
    xy = np.asarray(sample.future_xy, dtype=np.float64).copy()
    xy[~np.isfinite(xy).all(axis=1)] = 0.0  # invalid tail steps never count
    return xy


class EgoPlanner(Protocol):
    """A camera-free reference planner (nn/ego_mlp.py's EgoMLP): ego state -> (6, 2)."""

    inputs: str

    def plan(self, ego: EgoState) -> np.ndarray: ...


@dataclass(frozen=True)
class EncodedFrame:
    """One keyframe through the vision encoder: what every setting and probe reuses."""

    scene_name: str
    images: np.ndarray  # the six camera images as loaded (overlays draw on them)
    visual: VisualTokens
    encoder_ms: float


def encode_frame(model: EvalModel, sample: KeyframeSample) -> EncodedFrame:
    """Load, preprocess and encode `sample`'s six images once (the encoder timed on its own)."""
    images = load_camera_images(sample, model.camera_names)
    with torch.inference_mode():
        pixels = model.preprocess(torch.from_numpy(images))
        visual, encoder_ms = _timed(model, lambda: model.encode(pixels))
    return EncodedFrame(sample.scene_name, images, visual, encoder_ms)


class Evaluator:
    """Runs methods over samples; `add(sample, partner)` per sample, then `results(metadata)`.

    `ego_inputs`: what every planner may read of the ego state ("full" or "minimal").
    `ego_mlp`: the ego-only reference trained for that setting (None: no such row, and the
    results say why through `ego_mlp_missing`). `world`: the dataset's own event records, for
    the event labels. `bootstrap_draws`: scene resamples for the intervals.
    """

    def __init__(
        self,
        *,
        model: EvalModel,
        pruners: Sequence[str],
        ratios: Sequence[float],
        seed: int = 0,
        overlay: OverlaySpec | None = None,
        ego_inputs: EgoInputs = "full",
        ego_mlp: EgoPlanner | None = None,
        ego_mlp_missing: str | None = None,
        world: WorldRecords | None = None,
        bootstrap_draws: int = 2000,
    ) -> None:
        pruners, ratios = check_methods(pruners, ratios)
        if ego_inputs not in EGO_INPUTS:
            raise ValueError(f"ego inputs must be one of {EGO_INPUTS}, got {ego_inputs!r}")
        if ego_mlp is not None and ego_mlp.inputs != ego_inputs:
            raise ValueError(
                f"the ego MLP was trained for ego inputs {ego_mlp.inputs!r}, this evaluation "
                f"uses {ego_inputs!r}"
            )
        self.model = model
        self.overlay = overlay
        self.seed = seed
        self.ego_inputs: EgoInputs = ego_inputs
        self.ego_mlp = ego_mlp
        self.ego_mlp_missing = ego_mlp_missing
        self.world = world
        self.bootstrap_draws = bootstrap_draws
        self._selectors = {p: model.selector(p, seed=seed) for p in pruners if p != UNPRUNED}
        self._runs: dict[tuple[str, float], _Run] = {(UNPRUNED, 0.0): _Run(UNPRUNED, "none", 0.0)}
        for pruner in self._selectors:
            for ratio in ratios:
                whole_frame = pruner in WHOLE_FRAME_PROBES
                if (ratio > 0) != whole_frame:  # whole-frame probes: ratio 0 only, own run
                    stage = model.selector_stage(pruner)
                    self._runs[(pruner, ratio)] = _Run(pruner, stage, ratio)
        self._ratios = ratios
        self.needs_partner = "shuffled" in self._selectors
        self._needs_fg = any(p in self._selectors for p in ORACLE_PROBES)
        # camera-free plans and the logged trajectory itself, scored like the methods
        names = ["constant_velocity", "ctra"] + (["ego_mlp"] if ego_mlp is not None else [])
        self._references = {
            name: _Run(name, "reference", 0.0) for name in names + ["ground_truth"]
        }
        self._scenes: list[str] = []
        self._events: list[str] = []
        self.samples = 0

    def _reference_plans(self, sample: KeyframeSample, ego: EgoState) -> dict[str, np.ndarray]:
        plans = {
            "constant_velocity": constant_velocity_plan(ego),
            "ctra": ctra_plan(ego),
            "ground_truth": _gt_trajectory(sample),
        }
        if self.ego_mlp is not None:
            plans["ego_mlp"] = self.ego_mlp.plan(ego)
        return plans

    def _event(self, sample: KeyframeSample) -> str:
        leads = None if self.world is None else self.world.leads(sample.token)
        return label_event(
            speed=sample.ego.speed,  # what the ego did, not what the setting lets planners read
            future_xy=sample.future_xy,
            future_yaw=sample.future_yaw,
            future_valid=sample.future_valid,
            leads=leads,
        )

    def _probe_aux(
        self, sample: KeyframeSample, visual: VisualTokens, partner: EncodedFrame | None
    ) -> VisualTokens:
        """`visual` with what the requested probes read (fg_share, partner_tokens) in aux."""
        if not (self._needs_fg or self.needs_partner):
            return visual
        aux = dict(visual.aux)
        if self._needs_fg:
            aux[FG_SHARE] = torch.from_numpy(
                token_fg_share(sample, self.model.camera_names, visual, self.model.image_size)
            ).to(visual.tokens.device)
        if self.needs_partner:
            if partner is None:
                raise ValueError("the shuffled probe needs a partner sample from another scene")
            if partner.scene_name == sample.scene_name:
                raise ValueError(
                    f"shuffled paired {sample.token} with a keyframe of its own scene "
                    f"{sample.scene_name}: the pairing must cross scenes"
                )
            aux[PARTNER_TOKENS] = partner.visual.tokens
        return VisualTokens(tokens=visual.tokens, grid_thw=visual.grid_thw, aux=aux)

    @property
    def plans_per_sample(self) -> int:
        return len(self._runs)

    def add(
        self,
        sample: KeyframeSample,
        partner: KeyframeSample | EncodedFrame | None = None,
        *,
        frame: EncodedFrame | None = None,
    ) -> None:
        """Evaluate every method on one sample.

        `partner`: the keyframe (another scene) lending `shuffled` its tokens, as a sample or
        already encoded; needed only when shuffled is evaluated. `frame`: `sample` already
        through the encoder (eval/runner.py encodes each keyframe once for every setting).
        """
        model = self.model
        ego = restrict_ego(sample.ego, self.ego_inputs)
        truth = GroundTruth.from_sample(sample)
        self._scenes.append(sample.scene_name)
        self._events.append(self._event(sample))
        for name, plan in self._reference_plans(sample, ego).items():
            _score(self._references[name], truth, plan)
        cv_plan = constant_velocity_plan(ego)
        frame = frame or encode_frame(model, sample)
        if isinstance(partner, KeyframeSample):
            partner = encode_frame(model, partner) if self.needs_partner else None
        images, encoder_ms = frame.images, frame.encoder_ms
        visual = self._probe_aux(sample, frame.visual, partner)
        n_tokens = int(visual.tokens.shape[0])
        everything = Selection(kept_index=torch.arange(n_tokens, device=visual.tokens.device))
        overlays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        stamp_s = sample.timestamp_us / 1e6
        for (pruner, ratio), run in self._runs.items():
            slot = run.memory.at(stamp_s, sample.scene_name)
            with torch.inference_mode():
                output, planned, kept, n_kept, select_ms = self._plan_one(
                    run, visual, everything, ego, cv_plan, slot
                )
            _score(run, truth, planned)
            run.kept.append(n_kept)
            run.totals.append(n_tokens)
            self._account(run, output, visual, ego, encoder_ms, select_ms)
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
        ego: EgoState,
        cv_plan: np.ndarray,
        memory: FrameSlot | None = None,
    ) -> tuple[PlanOutput, np.ndarray, torch.Tensor | None, int, float | None]:
        """(output, planned (6, 2), kept index if known, kept count, selection ms)."""
        model, n_tokens = self.model, int(visual.tokens.shape[0])
        select_ms: float | None = None
        if run.pruner == UNPRUNED:
            output = model.plan(visual, everything, ego, memory=memory)
            kept, n_kept = everything.kept_index, n_tokens
        elif run.stage == "encoder":
            keep = keep_count(n_tokens, run.ratio)
            selection, select_ms = _timed(
                model, lambda: self._selectors[run.pruner].select(visual, keep)
            )
            output = model.plan(visual, selection, ego, memory=memory)
            kept, n_kept = selection.kept_index, int(selection.kept_index.numel())
        else:  # LLM-stage: the planner selects inside its prefill
            keep = keep_count(n_tokens, run.ratio)
            output = model.plan(
                visual,
                everything,
                ego,
                llm_selector=self._selectors[run.pruner],
                keep=keep,
                memory=memory,
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
        ego: EgoState,
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
        text = self.model.text_tokens(ego)
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
                if (pruner, ratio) in built:
                    records.append(built[(pruner, ratio)])
                elif ratio == 0:
                    shared = EvalRecord.from_json(unpruned.to_json())
                    shared.pruner, shared.stage = pruner, self.model.selector_stage(pruner)
                    shared.shared_with = unpruned.key
                    records.append(shared)
        for record in records:
            record.rel_l2 = relative(record.metric("l2"), unpruned.metric("l2"))
            record.rel_collision = relative(
                record.metric("collision"), unpruned.metric("collision")
            )
            record.rel_intersection = relative(
                record.metric("intersection"), unpruned.metric("intersection")
            )
        references = []
        for name, run in self._references.items():
            ref = EvalRecord(
                pruner=name,
                stage="reference",
                prune_ratio=0.0,
                kept_tokens=None,
                total_tokens=None,
                samples=run.metrics.samples,
            )
            ref.set_metrics(run.metrics.summary())
            ref.rel_l2 = relative(ref.metric("l2"), unpruned.metric("l2"))
            ref.by_event = _breakdown(run, self._events)
            references.append(ref)
        for record in records:  # shared ratio-0 rows get the unpruned run's breakdown
            source = (
                (record.pruner, record.prune_ratio)
                if record.shared_with is None
                else (
                    UNPRUNED,
                    0.0,
                )
            )
            record.by_event = _breakdown(self._runs[source], self._events)
        meta = {
            **metadata,
            "ego_inputs": self.ego_inputs,
            "event_counts": {e: self._events.count(e) for e in sorted(set(self._events))},
            "event_labels": "eval/events.py: "
            + ("the world's own constraint records + " if self.world and len(self.world) else "")
            + "the logged future kinematics",
        }
        if self.ego_mlp is None:
            meta["ego_mlp_missing"] = self.ego_mlp_missing or "no ego MLP was given"
        if self.samples:
            scores = {
                f"{p}@{r:g}": np.array(run.l2_steps).reshape(-1, PLAN_STEPS)
                for (p, r), run in self._runs.items()
            }
            disc = discrimination(
                scores, self._scenes, self._events, draws=self.bootstrap_draws, seed=self.seed
            )
        else:
            disc = {}
        return EvalResults(
            records=records, references=references, metadata=meta, discrimination=disc
        )

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
