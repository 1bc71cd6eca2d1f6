"""MODEL_CARD.md of a built default model: what it is, how it was made, how well it does.

Everything is read from the build (plan, bundle, per-stage summaries, timings, evaluation results
and targets); nothing here is typed in by hand, so a rebuild rewrites a truthful card.
"""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastdrive_ros.nn.selection import keep_count


@dataclass
class CardInputs:
    """What the card is written from."""

    plan: Any  # BuildPlan
    vla: Any  # the built VLA
    state: dict[str, Any]  # the builder's state.json (timings, data, export, eval targets)
    work: Path
    command: str
    stage_summaries: dict[str, dict]
    eval_results: dict
    eval_folder: Path | None = None  # the card's evaluation run (results.md); None: not run


def _params(module: torch.nn.Module | None) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def _m(count: int) -> str:
    return f"{count / 1e6:.2f} M"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "–" if value is None else str(value)


def _architecture(vla: Any) -> list[str]:
    from fastdrive_ros.nn.llm_stage import text_config_of

    qwen = vla.config.qwen_config()
    vision, text = qwen.vision_config, text_config_of(qwen)
    planner = vla.planner
    head = _params(planner.waypoint_head)
    ego = _params(getattr(planner, "ego_encoder", None))
    reader = _params(getattr(planner, "scene_reader", None))
    llm = _params(planner) - head - ego - reader
    pruner = vla.pruner
    lines = [
        "| Part | Shape | Parameters |",
        "|---|---|---|",
        f"| Vision tower (Qwen2.5-VL) | {vision.depth} blocks, width {vision.hidden_size}, "
        f"{vision.num_heads} heads, {vision.patch_size}-px patches, {vision.window_size}-px "
        f"windows, full attention in blocks {list(vision.fullatt_block_indexes)}, 2x2 merger "
        f"to D = {vision.out_hidden_size} | {_m(_params(vla.vision))} |",
        f"| LLM (Qwen2.5) | {text.num_hidden_layers} layers, width {text.hidden_size}, "
        f"{text.num_attention_heads} heads / {text.num_key_value_heads} KV heads, MLP "
        f"{text.intermediate_size}, vocabulary {text.vocab_size} (tied), M-RoPE | {_m(llm)} |",
        f"| Waypoint head | 2-layer MLP on the `<plan>` token -> 6 x (x, y), x "
        f"{vla.config.waypoint_scale:g} m"
        + _PRIOR_CLAUSE.get(getattr(vla.config, "waypoint_prior", "none"), "")
        + f" | {_m(head)} |",
    ]
    if ego:
        lines.append(
            "| Ego encoder | 2-layer MLP: command, minimal flag, speed, acceleration, yaw rate, "
            "steering, 6 past positions (zeros beyond command and speed with minimal inputs) -> "
            f"one embedding added to the `<plan>` token | {_m(ego)} |"
        )
    if reader:
        lines.append(
            "| Scene reader | one learned-query pooling over the KEPT CAM_FRONT tokens -> the "
            "binding constraint's kind, inverse gap and (with the speed) the driver's decided "
            "acceleration, trained on the world's labels; those and the pooled feature -> one "
            f"embedding added to the `<plan>` token | {_m(reader)} |"
        )
    if pruner is not None:
        p = pruner.config
        lines.append(
            f"| ReconPruner | one Qwen2 decoder layer (bidirectional), width {p.hidden_size}, "
            f"{p.num_attention_heads} heads / {p.num_key_value_heads} KV, MLP "
            f"{p.intermediate_size}, learnable query, score = Linear(V* . Q*) | "
            f"{_m(_params(pruner))} |"
        )
    total = _params(vla.vision) + _params(planner) + _params(pruner)
    lines.append(f"| **Total** | | **{_m(total)}** |")
    return lines


def _tokens(vla: Any) -> list[str]:
    config = vla.config
    per_camera = config.tokens_per_camera
    cameras = len(config.camera_names)
    total = per_camera * cameras
    unit = 28
    height, width = config.image_size
    lines = [
        f"Each camera image is resized to {height} x {width} px (H x W) by the shared "
        f"preprocessing: {height // unit} x {width // unit} = **{per_camera} merged tokens per "
        f"camera** (28 x 28 px each), {cameras} cameras ({', '.join(config.camera_names)}) = "
        f"**{total} visual tokens** per frame.",
        "",
        "| Prune ratio p | Kept K = floor(N (1 - p)) | per camera (proportional split) |",
        "|---|---|---|",
    ]
    for ratio in (0.0, 0.25, 0.5, 0.75):
        keep = keep_count(total, ratio)
        lines.append(f"| {ratio:g} | {keep} | {keep / cameras:g} |")
    lines.append("")
    lines.append(
        f"The default prune ratio is {config.default_prune_ratio:g}; ReconPruner ranks the tokens "
        "of all cameras together (budget 'global'), as the paper."
    )
    return lines


def _data(plan: Any, state: dict) -> list[str]:
    lines = [
        "| Dataset | Seed | Scenes x length | Keyframes (2 Hz) | Used for |",
        "|---|---|---|---|---|",
    ]
    uses: dict[str, list[str]] = {}
    for role, ref in (("train", plan.train), ("val", plan.val), ("eval", plan.eval)):
        limit = f", {ref.limit} spread" if ref.limit else ""
        uses.setdefault(ref.dataset, []).append(f"{role} (split {ref.split}{limit})")
    tables = getattr(plan, "table_scenes", {})
    for name in getattr(plan, "probe_sets", ()):
        limit = getattr(plan, "probe_limit", None)
        spread = f"{limit} keyframes spread" if limit else "all keyframes"
        uses.setdefault(name, []).append(f"diagnose probes ({spread})")
        uses[name].append("camera targets (all keyframes)")
        if name in tables:
            uses[name].append(f"pruning tables (first {tables[name]} scenes)")
    info = state.get("data", {})
    for name, ds in plan.datasets.items():
        samples = info.get(name, {}).get("samples", "–")
        lines.append(
            f"| {name} | {ds.seed} | {ds.scenes} x {ds.seconds:g} s | {samples} | "
            f"{'; '.join(uses.get(name, []))} |"
        )
    return lines


def _row(name: str, what: str, cfg: Any, extra: str = "") -> str:
    """One stage of the stage table: what it trained and its optimisation (a TrainConfig)."""
    opt = (
        f"{cfg.epochs} ep, batch {cfg.batch_size}, lr {cfg.lr:g} (AdamW, warm-up "
        f"{cfg.warmup_steps}, cosine), seed {cfg.seed}"
        if cfg is not None
        else "–"
    )
    return f"| {name} | {what} | {opt}{extra} |"


def _stage_table(plan: Any, state: dict) -> list[str]:
    seconds = state.get("seconds", {})

    lines = ["| Stage | What | Optimisation |", "|---|---|---|"]
    source = state.get("planner_from")
    if source:
        lines.append(
            f"| A-C | not run in this build: the tower, the stage-4b planner with its scene "
            f"reader and the ReconPruner of `{source}` (`build-default --planner-from`) | – |"
        )
    else:
        lines += _training_stages(plan, state)
    if plan.decision_prior is not None:
        lines += _decision_stages(plan)
    notes = state.get("build_notes", [])
    if notes:
        lines += ["", "How this build actually ran:", ""]
        lines += [f"- {note}" for note in notes]
    lines += ["", "Wall-clock per stage (this machine):", ""]
    lines += ["| Stage | Seconds | Minutes |", "|---|---|---|"]
    for name, value in seconds.items():
        lines.append(f"| {name} | {value:.0f} | {value / 60:.1f} |")
    total = sum(seconds.values())
    lines.append(f"| **total** | **{total:.0f}** | **{total / 60:.1f}** |")
    return lines


def _decision_stages(plan: Any) -> list[str]:
    world = plan.reading_world
    rows = [
        _row(
            "4c reading",
            f"a DecisionReader (per-cell head, corridor, motion from the keyframe 0.5 s "
            f"before, boosted trees; train/pruned_reading.py) fitted on `{world}` (seed "
            f"{plan.datasets[world].seed}), a world the planner never trains on, under all, "
            "foreground-, background-ranked and random token sets; it feeds the scene reader"
            + (
                "; with the full ego status it also reads the pace (train/pace.py: the "
                "acceleration whose prior best fits the next 3 s) from the same and the measured "
                "acceleration, yaw rate and acceleration 0.5 s before"
                if plan.decision_pace
                else ""
            ),
            None,
        ),
        _row(
            "4e prior",
            "one gain per ego-input setting fitted on the training keyframes (the kinematic "
            "prior's acceleration "
            + (
                "moved a share gain of the way to the read decision"
                if plan.decision_form == "toward"
                else "plus gain x the read decision"
            )
            + (", the read pace with the full status" if plan.decision_pace else "")
            + "; gains fitted on the evaluation's L2 Avg), then the head trained over that "
            "prior (train-planner --decision-prior "
            f"--decision-form {plan.decision_form})",
            plan.decision_prior,
        ),
    ]
    if plan.decision_refine:  # 4d sits between the reading and the prior
        rows.insert(
            1,
            _row(
                "4d refine",
                f"stage 4b's recipe again on that bundle ({plan.reader_only_epochs} "
                "reader-only epochs, then the all-token epoch)",
                plan.reader,
            ),
        )
    return rows


def _training_stages(plan: Any, state: dict) -> list[str]:
    """Rows of stages A-C, as this build ran them."""
    lines: list[str] = []
    crop = plan.vision_crop
    reused = state.get("vision", {}).get("from")
    if reused:
        lines.append(
            f"| A vision | not trained in this build: the tower (weights) of `{reused}`, the "
            "same shapes (`build-default --vision-from`) | – |"
        )
    else:
        lines.append(
            _row(
                "A vision",
                "tower + per-token heads: class histogram (soft CE) + half-cell colours (MSE)"
                + (
                    " + cell mean/max inverse depth (MSE, the renderer's z-buffer), "
                    if "val_depth_mse" in state.get("vision", {}).get("last_val", {})
                    else ", "
                )
                + f"{plan.vision_images} camera images"
                + (f" as random {crop[0]}x{crop[1]} crops" if crop else ""),
                plan.vision,
            )
        )
    if plan.affordance is not None:
        lines.append(
            _row(
                "A2 affordances",
                "the tower fine-tuned on whole front-camera images to say what binds the ego: "
                "the world's lead kind (none / vehicle / red light / pedestrian / cyclist), "
                "inverse gap and, given the speed, the driver's decided acceleration, through a "
                "one-query pooling head; stage A's per-token losses kept on"
                + _worlds_clause(plan),
                plan.affordance,
            )
        )
    extras = []
    if plan.planner_ego_dropout > 0:
        extras.append(
            f"{100 * plan.planner_ego_dropout:.0f} % of samples restricted to the minimal ego "
            "inputs (command + speed)"
        )
    if plan.planner_event_weight > 1:
        extras.append(
            f"keyframes the ego status cannot explain (its prior misses +3 s by > 1 m) seen "
            f"{plan.planner_event_weight}x"
        )
    extra = ("; " + "; ".join(extras)) if extras else ""
    if plan.planner_text is not None:
        lines.append(
            _row(
                "B1 planner",
                f"prompt only (ego status), all training keyframes{extra}",
                plan.planner_text,
            )
        )
    tokens = (
        f"visual tokens in partial sets ({100 * plan.planner_subset_full_share:.0f} % all, else "
        f"a {plan.planner_subset_keep_min:g}-1 share by random, per-camera, foreground-, "
        "background- or norm-ranked selection)"
        if plan.planner_subset_keep_min is not None
        else "all visual tokens"
    )
    lines.append(
        _row(
            "B2 planner",
            f"prompt + {tokens} (frozen tower, cached), "
            f"{plan.cache_train.limit or 'all'} keyframes, smooth-L1{extra}",
            plan.planner,
        )
    )
    lines.append(
        _row(
            "C ReconPruner",
            f"AFBR (alpha 0.5, lambda 0.2), decoder {plan.decoder_layers} layers x width "
            f"{plan.decoder_width or 'D'} warmed up for {plan.decoder_warmup_steps} "
            f"steps on whole images, {plan.pruner_images} camera images (train-pruner's "
            f"defaults: the paper's 6 layers x D, 150 warm-up steps)",
            plan.pruner,
        )
    )
    return lines


def _training_results(inputs: CardInputs) -> list[str]:
    lines: list[str] = []
    vision = inputs.state.get("vision", {}).get("last_val", {})
    if vision:
        lines.append(
            f"- Stage A (validation images): class soft-CE {_fmt(vision.get('val_class_ce'))}, "
            f"dominant-class accuracy {_fmt(vision.get('val_class_acc'))}, foreground-share "
            f"error {_fmt(vision.get('val_fg_share_mae'))}, colour MSE "
            f"{_fmt(vision.get('val_colour_mse'), 4)}"
            + (
                f", inverse-depth MSE {_fmt(vision.get('val_depth_mse'), 4)} (nearest point of "
                f"a cell off by {_fmt(vision.get('val_depth_max_mae'), 3)} in 2 m / depth)."
                if "val_depth_mse" in vision
                else "."
            )
        )
    affordance = inputs.state.get("affordance", {}).get("last_val", {})
    if affordance:
        lines.append(
            f"- Stage A2 (validation front frames): lead-kind accuracy "
            f"{_fmt(affordance.get('val_lead_acc'))} (cross-entropy "
            f"{_fmt(affordance.get('val_lead_ce'))}), inverse gap off by "
            f"{_fmt(affordance.get('val_inverse_gap_mae'), 3)} (5 m / gap), decided "
            f"acceleration off by {_fmt(affordance.get('val_decision_mae'))} m/s^2."
        )
    planner = inputs.stage_summaries.get("planner", {})
    for phase in ("text", "full"):
        last = planner.get(phase, {}).get("last_val", {})
        if last:
            lines.append(
                f"- Stage B {phase} phase ({planner[phase].get('steps')} steps, "
                f"{planner[phase].get('seconds')} s): validation L2 Avg "
                f"{_fmt(last.get('val_l2_avg'))} m vs constant velocity "
                f"{_fmt(last.get('val_cv_l2_avg'))} m on the same keyframes."
            )
    for stage, label in (("reader", "Stage B with a SceneReader"), ("refine", "Stage 4d")):
        lines += _reader_result(label, inputs.stage_summaries.get(stage, {}))
    prior = inputs.stage_summaries.get("prior", {}).get("full", {})
    gains = getattr(inputs.vla.config, "decision_gains", None)
    if prior.get("last_val") and gains:
        last = prior["last_val"]
        lines.append(
            "- Stage 4e (decision prior): gains "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(gains.items()))
            + f" (m/s^2 added per m/s^2 read); {prior.get('steps')} steps over the driven prior: "
            f"validation L2 Avg {_fmt(last.get('val_l2_avg'))} m vs constant velocity "
            f"{_fmt(last.get('val_cv_l2_avg'))} m, decision off by "
            f"{_fmt(last.get('val_fact_decision_mae'))} m/s^2."
        )
    pruner = inputs.stage_summaries.get("pruner", {})
    last = pruner.get("last_val", {})
    if last:
        recalls = ", ".join(
            f"{p} % pruned: {_fmt(last.get(f'val_fg_recall_p{p}'))} (oracle "
            f"{_fmt(last.get(f'val_fg_recall_oracle_p{p}'))})"
            for p in (25, 50, 75)
        )
        lines.append(
            f"- Stage C ({pruner.get('steps')} steps, {pruner.get('seconds')} s): AFBR loss "
            f"{_fmt(last.get('val_loss'))} (fore {_fmt(last.get('val_loss_fore'))}, back "
            f"{_fmt(last.get('val_loss_back'))}), tokens with S > 0: "
            f"{_fmt(last.get('val_kept_fraction'))}. Share of the image's foreground (token FG "
            f"fraction) kept by the top-K of each camera: {recalls}."
        )
    return lines


def _reader_result(label: str, summary: dict) -> list[str]:
    """A planner fine-tune with a scene reader: its reader-only phase, then the all-token one."""
    alone, full = (summary.get(k, {}).get("last_val", {}) for k in ("reader", "full"))
    if not (alone and full):
        return []
    return [
        f"- {label} ({summary['reader'].get('steps')} reader-only steps, then "
        f"{summary['full'].get('steps')} all-token steps): lead-kind accuracy "
        f"{_fmt(full.get('val_fact_lead_acc'))}, inverse gap off by "
        f"{_fmt(full.get('val_fact_inverse_gap_mae'), 3)}, decision off by "
        f"{_fmt(full.get('val_fact_decision_mae'))} m/s^2; validation L2 Avg "
        f"{_fmt(full.get('val_l2_avg'))} m vs constant velocity "
        f"{_fmt(full.get('val_cv_l2_avg'))} m."
    ]


def _image_dependence(inputs: CardInputs) -> list[str]:
    figures = inputs.state.get("image_dependence", {})
    if not figures:
        return []
    text = inputs.stage_summaries.get("planner", {}).get("text", {}).get("last_val", {})
    lines = [
        "### Does the planner use the cameras?",
        "",
        f"The final planner on the {figures.get('samples')} validation keyframes, L2 Avg (m):",
        "",
        "| Visual tokens given to the planner | L2 Avg (m) |",
        "|---|---|",
        f"| its own frame's (normal use) | {_fmt(figures.get('l2_avg_own'))} |",
        f"| none (prompt only) | {_fmt(figures.get('l2_avg_none'))} |",
        f"| another frame's (shuffled) | {_fmt(figures.get('l2_avg_other'))} |",
        f"| constant velocity (no model) | {_fmt(figures.get('l2_avg_constant_velocity'))} |",
    ]
    if text.get("val_l2_avg") is not None:
        lines.append(
            f"| prompt-only planner after stage B1 (never saw an image) | "
            f"{_fmt(text.get('val_l2_avg'))} |"
        )
    lines += [
        "",
        "The gap between the first row and the shuffled / prompt-only rows is what the images "
        "add; pruning can only change planning quality within that gap.",
    ]
    return lines


def _probes(inputs: CardInputs) -> list[str]:
    """Issue 8's probes on the held-out worlds (train/probes.py), both ego-input settings."""
    probes = {
        k: v
        for k, v in inputs.state.get("probes", {}).items()
        if k not in ("bundle_hash", "worlds")
    }
    if not probes:
        return []
    lines = [
        "### Does it read the cameras? Probes on held-out worlds",
        "",
        "Keyframes spread over each held-out world planned with their own visual tokens, with the "
        "tokens of a keyframe of another scene (shuffled), with none, and the kinematic prior "
        "alone (CTRA from the full status, constant velocity from the minimal one). Event "
        "keyframes: the full status' prior misses the +3 s position by > 1 m. Content effect = "
        "L2(shuffled) / L2(own) - 1, with a 95 % interval from a bootstrap over scenes "
        "(written by build-default's diagnose stage, fastdrive_ros/train/probes.py).",
        "",
        "| World (seed) | Ego inputs | Keyframes (events) | Own | Shuffled | None | Prior | "
        "Own, events | Shuffled, events | Content effect | Content effect, events |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def effect(f: dict, tag: str) -> str:
        value = f.get(f"content_effect{tag}")
        if value is None:
            return "–"
        low, high = f.get(f"content_effect{tag}_low"), f.get(f"content_effect{tag}_high")
        return f"{100 * value:+.1f} % [{100 * low:+.1f}, {100 * high:+.1f}]"

    for name, sets in probes.items():
        for setting in ("full", "minimal"):
            f = sets.get(setting)
            if not f:
                continue
            lines.append(
                f"| {name} ({sets.get('seed')}) | {setting} | {f['keyframes']} "
                f"({f['event_keyframes']}) | {_fmt(f['l2_own'])} | {_fmt(f['l2_shuffled'])} | "
                f"{_fmt(f['l2_none'])} | {_fmt(f['l2_prior'])} | {_fmt(f['l2_own_events'])} | "
                f"{_fmt(f['l2_shuffled_events'])} | {effect(f, '')} | {effect(f, '_events')} |"
            )
    lines += ["", "L2 Avg in metres."]
    return lines


def _evaluation(inputs: CardInputs) -> list[str]:
    results_md = None if inputs.eval_folder is None else inputs.eval_folder / "results.md"
    if results_md is None or not results_md.is_file():
        return ["Not evaluated in this build (run `fastdrive build-default` with --eval)."]
    lines = []
    meta = inputs.eval_results.get("metadata", {})
    first = meta.get("max_scenes")
    scenes = (
        f"the first {meta.get('scenes', first)} held-out scenes"
        if first
        else "the held-out scenes"
    )
    lines.append(
        f"`fastdrive eval` on {meta.get('samples', '?')} keyframes of {scenes} "
        f"({meta.get('dataroot', '')}, split {meta.get('split', '')}), every pruner at "
        f"every ratio, torch on the CPU ({meta.get('threads', '?')} thread(s), "
        f"{meta.get('machine', '')}); timings are medians on a shared, busy machine."
    )
    lines.append("")
    for line in results_md.read_text(encoding="utf-8").splitlines():
        lines.append("#" + line if line.startswith("#") else line)
    # results.md already carries the targets table; say how much room the images leave for it
    figures = inputs.state.get("image_dependence", {})
    own, none = figures.get("l2_avg_own"), figures.get("l2_avg_none")
    if own is not None and none:
        lines += [
            "",
            f"Reading the comparison: on validation the images take L2 Avg from {none:.3f} m "
            f"(prompt only) to {own:.3f} m ({100 * (none - own) / none:.1f} % better), so "
            "differences between pruners smaller than that gap say more about how the planner "
            "reacts to an unfamiliar token set than about which tokens matter for driving.",
        ]
    return lines


def _camera_targets(path: Path) -> list[str]:
    """build-default's targets stage report (eval/camera_targets.py), one heading level down."""
    if not path.is_file():
        return []
    return [
        "#" + line if line.startswith("#") else line
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def _export(state: dict) -> list[str]:
    export = state.get("export", {})
    if not export:
        return ["Not exported in this build."]
    if "error" in export:
        return [f"Export skipped: {export['error']}"]
    path = Path(export["path"])
    return [
        f"`{path.parent.name}/{path.name}` ({export['megabytes']} MiB): vision encoder + "
        f"ReconPruner + top-K (K = {export['keep']}, prune ratio {export['prune_ratio']:g}) "
        f"as one ONNX graph (`fastdrive export`); ONNX Runtime vs torch parity: "
        f"{'passed' if export.get('parity_ok') else 'FAILED'}."
    ]


def _conventions() -> list[str]:
    """Which conventions this model and real checkpoints use (issue 12), one line each."""
    return [
        "- Frame: x forward, y left, metres, 0.5 s steps. This model plans the rear axle "
        "(nuScenes ego_pose), the frame it was trained in. Real Qwen2.5-VL / Impromptu-VLA "
        "checkpoints plan the LiDAR sensor in the current LiDAR frame (SparseDrive's data): "
        "`fastdrive eval --reference auto` reads ground truth, history, boxes and map there "
        "(LIDAR_TOP calibrated_sensor; the synthetic world's nominal mount).",
        "- Metrics (the paper's, Impromptu-VLA's evaluator): L2 Avg = mean of the cumulative "
        "means at 1/2/3 s (ST-P3 / VAD); collision: a 4.084 x 1.85 m box 0.5 m ahead of the "
        "trajectory point, headings by central differences with the 0.5 m straight fallback, "
        "steps where the logged ego collides count 0 and stay in the denominator; intersection: "
        "a sample counts at horizon t if any step up to t touches the road boundary.",
        "- Images: this model resizes each camera to 280x504 (antialiased bilinear). Real "
        "checkpoints default to their own input, Impromptu-VLA's fine-tuning pipeline "
        "(1600x900 -> nearest to 682x384 -> Qwen bicubic 672x392, 336 tokens); "
        "`--resolution paper` gives FastDriveVLA's 1596x1596 (3249 tokens).",
        "- Prompt of real checkpoints: Impromptu's wording; steering is the steering-wheel "
        "angle in rad (CAN steeranglefeedback as it is; this project stores the front-wheel "
        "angle = wheel / 16); at a scene's start only the observed history rows are listed. "
        "Every listed row's acceleration, speed and steering come from the CAN bus at its "
        "time, as upstream (estimated from the poses without the CAN expansion). Greedy "
        "decoding, budget 256 new tokens.",
        "- ReconPruner training: this model's decoder was 2 layers x width 256 (= D) with 150 "
        "decoder warm-up steps; `fastdrive train-pruner` defaults to the paper's 6 layers at "
        "the LLM width D, 150 warm-up steps, and stops a run whose kept fraction collapses.",
        "- Baselines at the same K: SparseVLM follows its reference code (raters, the pruning "
        "layer's own attention, 30 % of the dropped tokens recycled into DPC-kNN clusters); "
        "its remaining deviations are listed in every results.md.",
    ]


def write_model_card(inputs: CardInputs, path: str | Path) -> Path:
    """Write MODEL_CARD.md for the built bundle at `path`."""
    plan, vla, state = inputs.plan, inputs.vla, inputs.state
    commands = state.get("commands", {})
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    targets = _camera_targets(Path(path).parent / "eval" / "camera_targets.md")
    lines = [
        "# fastdrive_ros default model: compact six-camera VLA + ReconPruner",
        "",
        "A small Qwen2.5-VL (vision tower + LLM, the real architecture and code) with a "
        "regression waypoint head and a FastDriveVLA ReconPruner, trained from scratch by this "
        "project's own code on its synthetic nuScenes-format world, sized for a 2-core CPU. It "
        "exists so that the node, the evaluation and the export run without downloads; it is "
        f"not a driving model for real roads. Built {now} by `{inputs.command}` "
        f"(plan '{plan.name}', Python {platform.python_version()}, torch {torch.__version__}).",
        "",
        "## Architecture",
        "",
        *_architecture(vla),
        "",
        "Prompt: the compact style (six image slots, then command, speed, acceleration, yaw "
        "rate and the pose 1 s ago as text, then `<plan>`); the head reads the final hidden "
        "state of `<plan>`. Kept visual tokens keep their full-sequence M-RoPE positions.",
        "",
        "## Tokens per camera",
        "",
        *_tokens(vla),
        "",
        "## Training data",
        "",
        "Synthetic world (`fastdrive_ros.data.synth`), nuScenes v1.0 layout (`v1.0-synth`), six "
        "nuScenes-calibrated cameras rendered directly at the model's input size, keyframes "
        "only, exact foreground masks and class maps. Train, validation and evaluation worlds "
        "use different seeds, so the evaluation scenes are never seen in training.",
        "",
        *_data(plan, state),
        "",
        "## How it was built",
        "",
        "```bash",
        inputs.command,
        "```",
        "",
        "runs every stage below (each resumable, skipped when done); its training stages ran "
        "as these commands (B and C side by side, then each after the one before):",
        "",
        "```bash",
        *(commands.values() or ["(every training stage reused from an earlier run)"]),
        "```",
        "",
        *_stage_table(plan, state),
        "",
        "Design notes: "
        + "; ".join(f"{k}: {v}" for k, v in plan.notes.items())
        + ("." if plan.notes else "none."),
        "",
        "## Training results",
        "",
        *_training_results(inputs),
        "",
        *_image_dependence(inputs),
        *(["", *_probes(inputs)] if _probes(inputs) else []),
        "",
        "## Evaluation on held-out scenes",
        "",
        *_evaluation(inputs),
        *(["", *targets] if targets else []),
        "",
        "## Export",
        "",
        *_export(state),
        "",
        "## Conventions",
        "",
        *_conventions(),
        "",
        "## Files",
        "",
        "`config.json` (VLAConfig: Qwen2.5-VL config, image size, cameras, prompt, head, "
        "pruner), `model.safetensors` (vision + planner, float32), `tokenizer.json` (compact "
        "BPE), `pruner/` (ReconPruner), `onnx/` (encoder + pruner graph and its sidecar), "
        "`eval/` (results.json / results.md / plots of the table above). `SHA256SUMS` (here and "
        "in `pruner/`) records the weights' content hashes; loading checks them "
        "(`sha256sum -c SHA256SUMS` by hand).",
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


_PRIOR_CLAUSE = {
    "kinematic": ", added to the kinematic prior of the ego status (CTRA with full ego inputs, "
    "constant velocity with minimal ones)",
    "ego_mlp": ", added to the plan of the ego-only reference MLP of the sample's ego inputs "
    "(frozen, inside the planner's weights)",
    "kinematic_decision": ", added to the kinematic prior of the ego status driven by the "
    "decision the scene reader reads (gain x decision added to its acceleration, or moved a "
    "share gain toward it; with the full status toward the pace its decision reader reads where "
    "it has pace trees; one gain per ego-input setting fitted on the training world)",
}


def _worlds_clause(plan: Any) -> str:  # a BuildPlan
    """Where stage A2 reads more worlds than the planner's: which, with their seeds."""
    splits = plan.affordance_splits
    if len(splits) == 1:
        return ""
    seeds = ", ".join(str(plan.datasets[ref.dataset].seed) for ref in splits)
    return (
        f"; {len(splits)} training worlds (seeds {seeds}), the planner's and more (stage 4b's "
        "reader-only phase reads them too)"
    )
