"""`fastdrive build-default`: rebuild the embedded default model (models/default) from scratch.

Stages (each skipped when its output exists, unless --force; interrupted training resumes from
its checkpoints):
  1. data     synthetic train / val / held-out eval worlds at the model's input size
  2. vision   stage A: the from-scratch vision tower learns per-token classes and colours
  3. cache    the frozen tower's tokens of the training and validation keyframes
  4. heads    stage B (`fastdrive train-planner`) and stage C (`fastdrive train-pruner`), two
              processes side by side (they share the frozen tower and the cache)
  5. bundle   vision + planner + ReconPruner saved as one bundle (safetensors + JSON + tokenizer),
              then how much the planner's validation L2 depends on the images
     ego_mlp  the camera-free ego-status MLP references (full and minimal ego inputs) trained on
              the planner's training keyframes, saved as bundle/ego_mlp/<inputs>.safetensors
  6. export   encoder + ReconPruner ONNX at the default prune ratio, with the parity check
  7. eval     `fastdrive eval` on the held-out worlds, both ego-input settings: every pruner at
              0/25/50/75 % on each world's first scenes (the pruning tables), and issue 8's
              probe rows on all of its scenes (the camera targets), side by side
     targets  the camera-target report over those runs (eval/camera_targets.md)
  8. card     MODEL_CARD.md (architecture, data, commands, timings, evaluation, targets)
This module may import every room (like cli.py); heavy imports stay inside functions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # torch-free at import: the CLI lists commands without it
    from fastdrive_ros.train.loop import TrainConfig

VERSION = "v1.0-synth"
STATE_FILE = "state.json"


class BuildError(RuntimeError):
    """A stage failed; the message names the stage, its log and what to do."""


@dataclass(frozen=True)
class EvalRun:
    """One `fastdrive eval` of the bundle: its folder, arguments and the settings it writes."""

    folder: Path
    args: list[str]
    settings: tuple[str, ...]  # ego-input settings, one subfolder each when several
    key: str  # what its results depend on besides the bundle
    targets: bool = False  # a probe-rows run over all scenes (else a table run)

    @property
    def results(self) -> list[Path]:
        if len(self.settings) == 1:
            return [self.folder / "results.json"]
        return [self.folder / setting / "results.json" for setting in self.settings]


class DefaultModelBuilder:
    """Runs the stages of a BuildPlan into `out`, keeping everything reusable under `work`."""

    poll_seconds = 5.0  # how often running jobs are looked at (their bars, their ends)

    def __init__(
        self,
        *,
        plan: Any,
        out: Path,
        work: Path,
        force: bool = False,
        jobs: int = 2,
        threads: int = 1,
        progress: bool = True,
        command: str = "",
        vision_from: Path | None = None,
        planner_from: Path | None = None,
    ) -> None:
        if jobs < 1 or threads < 1:
            raise ValueError(f"--jobs and --threads must be >= 1, got {jobs}, {threads}")
        self.plan = plan
        self.out = Path(out)
        self.work = Path(work)
        self.force = force
        self.jobs = jobs
        self.threads = threads
        self.progress = progress
        self.command = command
        self.vision_from = Path(vision_from) if vision_from is not None else None
        self.planner_from = Path(planner_from) if planner_from is not None else None
        if self.planner_from is not None and self.plan.decision_prior is None:
            raise ValueError("--planner-from only feeds the decision stages: the plan has none")
        self.work.mkdir(parents=True, exist_ok=True)
        state_path = self.work / STATE_FILE
        self.state: dict[str, Any] = (
            json.loads(state_path.read_text()) if state_path.is_file() and not force else {}
        )
        self.state.setdefault("seconds", {})

    # -- helpers ----------------------------------------------------------------------------

    def _save_state(self) -> None:
        (self.work / STATE_FILE).write_text(json.dumps(self.state, indent=1))

    def _log(self, text: str) -> None:
        typer.echo(text)

    def _stage(self, name: str, fn) -> None:
        start = time.monotonic()
        did = fn()
        if did:
            self.state["seconds"][name] = round(time.monotonic() - start, 1)
            self._save_state()
            self._log(f"[{name}] done in {self.state['seconds'][name]:.0f} s")
        else:
            self._log(f"[{name}] up to date, skipped (--force redoes it)")

    @property
    def vla_config(self):
        from fastdrive_ros.nn.configs import compact_config, tiny_config

        if self.plan.config == "compact":
            return compact_config()
        return tiny_config(cameras=6, ego_numbers=True)

    def data_root(self, name: str) -> Path:
        return self.work / "data" / name

    def spec(self, ref, limit: int | None | str = "ref"):
        from fastdrive_ros.train.workspace import DataSpec

        return DataSpec(
            self.data_root(ref.dataset),
            VERSION,
            ref.split,
            None,
            ref.limit if limit == "ref" else limit,
        )

    @property
    def space(self):
        from fastdrive_ros.train.workspace import Workspace

        return Workspace(self.work / "work")

    @property
    def stage_a_bundle(self) -> Path:
        return self.work / "stageA" / "bundle"

    @property
    def tower_bundle(self) -> Path:
        """The bundle whose tower the caches and heads use: stage A2's where the plan has it."""
        return self.work / "stageA2" / "bundle" if self.plan.affordance else self.stage_a_bundle

    # -- 1. data ----------------------------------------------------------------------------

    def make_data(self) -> bool:
        from fastdrive_ros.data.synth.generate import generate_dataset

        height, width = self.vla_config.image_size
        did = False
        for name, ds in self.plan.datasets.items():
            root = self.data_root(name)
            info_path = root / "synth" / "dataset.json"
            if info_path.is_file() and not self.force:
                info = json.loads(info_path.read_text())
                wanted = (ds.seed, ds.scenes, ds.seconds, [width, height], False, ds.conflicts)
                found = (
                    info.get("seed"),
                    info.get("scenes"),
                    info.get("seconds_per_scene"),
                    info.get("image_size"),
                    info.get("sweeps"),
                    info.get("conflicts", False),  # worlds written before the option had none
                )
                if found == wanted:
                    self.state.setdefault("data", {}).setdefault(
                        name,
                        {
                            "samples": info.get("keyframes_per_scene", 0) * ds.scenes,
                            "images": info.get("images"),
                        },
                    )
                    continue
            self._log(
                f"[data] generating {name}: {ds.scenes} scenes x {ds.seconds:g} s, seed {ds.seed}"
            )
            summary = generate_dataset(
                root,
                scenes=ds.scenes,
                seconds=ds.seconds,
                seed=ds.seed,
                image_size=(width, height),
                sweeps=False,
                workers=self.jobs,
                progress=self.progress,
                overwrite=True,
                town_grid=self.plan.town_grid,
                conflicts=ds.conflicts,
            )
            self.state.setdefault("data", {})[name] = {
                "samples": summary.samples,
                "images": summary.images,
                "seconds": round(summary.seconds, 1),
            }
            did = True
        return did

    def records(self, ref, limit: int | None | str = "ref"):
        return self.space.records(self.spec(ref, limit), progress=self.progress)

    # -- 2. vision --------------------------------------------------------------------------

    def train_vision(self) -> bool:
        from fastdrive_ros.nn.vla import VLA
        from fastdrive_ros.train.vision import pretrain_vision

        if (self.stage_a_bundle / "config.json").is_file() and not self.force:
            return False
        run = self.work / "stageA" / "run"
        if self.force:
            shutil.rmtree(run, ignore_errors=True)
        config = self.vla_config
        vla = VLA.build(config, seed=self.plan.vision.seed)
        if self.vision_from is not None:
            return self._reuse_vision(vla)
        summary = pretrain_vision(
            encoder=vla.vision,
            train_records=self.records(self.plan.train, None),
            val_records=self.records(self.plan.val),
            image_size=config.image_size,
            out_dir=run,
            config=self.plan.vision,
            crop=self.plan.vision_crop,
            max_train_images=self.plan.vision_images,
            max_val_images=self.plan.vision_val_images,
            progress=self.progress,
        )
        vla.save_pretrained(self.stage_a_bundle)
        self.state["vision"] = {
            "steps": summary.steps,
            "last_val": summary.val_history[-1] if summary.val_history else {},
        }
        return True

    def _reuse_vision(self, vla) -> bool:
        """Stage A from an existing bundle's tower (same shapes), e.g. the shipped default's.

        The synthetic world's look did not change with issue 8 (its behaviour did), so a short
        build may keep the tower; the card says so. Only the vision weights are taken.
        """
        from fastdrive_ros.nn.vla import VLA

        source = VLA.from_pretrained(self.vision_from)
        mine, theirs = vla.vision.state_dict(), source.vision.state_dict()
        shapes = {k: tuple(v.shape) for k, v in mine.items()}
        if shapes != {k: tuple(v.shape) for k, v in theirs.items()}:
            raise BuildError(
                f"--vision-from {self.vision_from}: its vision tower has other shapes than "
                f"the plan's {self.plan.config} config"
            )
        vla.vision.load_state_dict(theirs)
        vla.save_pretrained(self.stage_a_bundle)
        self.state["vision"] = {"steps": 0, "from": str(self.vision_from), "last_val": {}}
        return True

    def train_affordances(self) -> bool:
        from fastdrive_ros.data.world_labels import read_scene_labels, read_worlds_labels
        from fastdrive_ros.nn.vla import VLA
        from fastdrive_ros.train.affordance import finetune_affordances

        splits, val = self.plan.affordance_splits, self.plan.val
        worlds = [ref.dataset for ref in splits]
        if (self.tower_bundle / "config.json").is_file() and not self.force:
            # builds before the worlds were recorded trained on `train` alone
            built_on = self.state.get("affordance", {}).get("worlds", [self.plan.train.dataset])
            if built_on != worlds:
                raise BuildError(
                    f"{self.tower_bundle} was trained on the worlds {built_on}, this plan's "
                    f"stage A2 reads {worlds}: pass --force or another --work-dir"
                )
            return False
        run = self.work / "stageA2" / "run"
        if self.force:
            shutil.rmtree(run, ignore_errors=True)
        vla = VLA.from_pretrained(self.stage_a_bundle)
        summary = finetune_affordances(
            encoder=vla.vision,
            train_records=[record for ref in splits for record in self.records(ref, None)],
            val_records=self.records(val),
            train_labels=read_worlds_labels([self.data_root(ref.dataset) for ref in splits]),
            val_labels=read_scene_labels(self.data_root(val.dataset)),
            image_size=self.vla_config.image_size,
            out_dir=run,
            config=self.plan.affordance,
            max_val_images=self.plan.affordance_val_images,
            progress=self.progress,
        )
        vla.save_pretrained(self.tower_bundle)
        self.state["affordance"] = {
            "worlds": worlds,
            "steps": summary.steps,
            "last_val": summary.val_history[-1] if summary.val_history else {},
        }
        return True

    # -- 3. cache ---------------------------------------------------------------------------

    def make_caches(self) -> bool:
        from fastdrive_ros.nn.vla import VLA

        vla = VLA.from_pretrained(self.tower_bundle)
        did = False
        for ref, limit in (
            (self.plan.cache_train, "ref"),
            (self.plan.val, self.plan.planner_val_samples),
        ):
            spec = self.spec(ref, limit)
            cache = self._token_cache(vla, spec, self.space.records(spec, progress=self.progress))
            did = did or cache.folder.name not in self.state.get("caches", [])
            self.state.setdefault("caches", [])
            if cache.folder.name not in self.state["caches"]:
                self.state["caches"].append(cache.folder.name)
        return did

    # -- 4. planner and pruner ----------------------------------------------------------------

    def _planner_args(self) -> list[str]:
        """Stage 4: the planner on the stage-A2 tower, prompt-only warm-up first."""
        plan = self.plan
        return self._train_planner_args(
            self.tower_bundle, self.work / "planner", plan.planner, plan.planner_text
        )

    def _reader_args(self) -> list[str]:
        """Stage 4b: the trained planner (work/planner/model) with a SceneReader, fine-tuned."""
        plan = self.plan
        assert plan.reader is not None
        args = self._train_planner_args(
            self.work / "planner" / "model", self.work / "reader", plan.reader, None
        )
        args += ["--scene-reader", "--reader-epochs", str(plan.reader_only_epochs)]
        for ref in plan.affordance_splits:  # stage A2's other worlds teach the reader too
            if ref.dataset != plan.train.dataset:
                args += ["--reader-dataroot", str(self.data_root(ref.dataset))]
        return args + ["--loss-beta", str(plan.reader_loss_beta)]

    def _train_planner_args(
        self, model: Path, out: Path, cfg: TrainConfig, text: TrainConfig | None
    ) -> list[str]:
        """`fastdrive train-planner` from `model` into `out`, on the plan's data and token sets."""
        plan, train, val = self.plan, self.plan.train, self.plan.val
        args = [
            "train-planner",
            *("--model", str(model)),
            *("--dataroot", str(self.data_root(train.dataset)), "--version", VERSION),
            *("--split", train.split),
            *("--val-dataroot", str(self.data_root(val.dataset)), "--val-split", val.split),
            *("--out", str(out), "--work-dir", str(self.work / "work")),
            *("--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size)),
            *("--lr", str(cfg.lr), "--warmup-steps", str(cfg.warmup_steps)),
            *("--weight-decay", str(cfg.weight_decay)),
            *("--text-epochs", str(text.epochs if text else 0)),
            *("--val-every", str(cfg.val_every)),
            *("--max-val-samples", str(plan.planner_val_samples)),
            *("--seed", str(cfg.seed), "--device", "cpu"),
            *("--threads", str(self.threads)),
        ]
        if plan.planner_subset_keep_min is not None:
            args += ["--subset-keep-min", str(plan.planner_subset_keep_min)]
            args += ["--subset-full-share", str(plan.planner_subset_full_share)]
        if plan.planner_ego_dropout > 0:
            args += ["--ego-dropout", str(plan.planner_ego_dropout)]
        if plan.planner_event_weight > 1:
            args += ["--event-weight", str(plan.planner_event_weight)]
        if tuple(plan.planner_val_settings) != ("full",):
            args += ["--val-settings", ",".join(plan.planner_val_settings)]
        if text is not None:
            args += ["--text-batch-size", str(text.batch_size), "--text-lr", str(text.lr)]
            args += ["--text-warmup-steps", str(text.warmup_steps)]
        if plan.cache_train.limit is not None:
            args += ["--max-samples", str(plan.cache_train.limit)]
        return args

    @property
    def stage4b_bundle(self) -> Path:
        """Stage 4b's planner (or the earlier recipe's plain one), or --planner-from's bundle."""
        if self.planner_from is not None:
            return self.planner_from
        return self.work / ("reader" if self.plan.reader is not None else "planner") / "model"

    @property
    def planner_dir(self) -> Path:
        """The bundle's planner: the last planner stage's output."""
        return self.work / "prior" / "model" if self.plan.decision_prior else self.stage4b_bundle

    @property
    def pruner_dir(self) -> Path:
        return (self.planner_from or self.work / "pruner") / "pruner"

    def _pruner_args(self) -> list[str]:
        plan, train, val, cfg = self.plan, self.plan.train, self.plan.val, self.plan.pruner
        args = [
            "train-pruner",
            *("--model", str(self.tower_bundle)),
            *("--dataroot", str(self.data_root(train.dataset)), "--version", VERSION),
            *("--split", train.split),
            *("--val-dataroot", str(self.data_root(val.dataset)), "--val-split", val.split),
            *("--out", str(self.work / "pruner"), "--work-dir", str(self.work / "work")),
            *("--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size)),
            *("--lr", str(cfg.lr), "--warmup-steps", str(cfg.warmup_steps)),
            *("--weight-decay", str(cfg.weight_decay), "--val-every", str(cfg.val_every)),
            *("--decoder-layers", str(plan.decoder_layers)),
            *("--decoder-warmup-steps", str(plan.decoder_warmup_steps)),
            *("--max-val-samples", str(plan.planner_val_samples)),
            *("--max-val-images", str(plan.pruner_val_images)),
            *("--seed", str(cfg.seed), "--device", "cpu", "--threads", str(self.threads)),
        ]
        if plan.decoder_width is not None:
            args += ["--decoder-width", str(plan.decoder_width)]
        if plan.cache_train.limit is not None:
            args += ["--max-samples", str(plan.cache_train.limit)]
        if plan.pruner_images is not None:
            args += ["--max-train-images", str(plan.pruner_images)]
        return args

    # -- 4c-4e. the read decision as a path ----------------------------------------------------

    def _reading_args(self) -> list[str]:
        """4c: a DecisionReader fitted on the reading world, saved into stage 4b's bundle."""
        plan = self.plan
        return [
            *("-m", "fastdrive_ros.train.pruned_reading"),
            *("--tower", str(self.stage4b_bundle), "--version", VERSION),
            str(self.data_root(plan.reading_world)),
            str(self.data_root(plan.val.dataset)),  # what it reads on unseen scenes, for the log
            # selectors that need no ReconPruner: stage 4b's planner has none yet
            *("--pruners", "oracle_fg,anti_oracle,random"),
            *("--threads", str(self.threads), "--seed", "0"),
            *("--bundle-out", str(self.work / "reading" / "model")),
            *(["--pace"] if plan.decision_pace else []),
        ]

    def _refine_args(self) -> list[str]:
        """4d: stage 4b's recipe again, the scene reader now fed the fitted reading."""
        args = self._reader_args()
        args[args.index("--model") + 1] = str(self.work / "reading" / "model")
        args[args.index("--out") + 1] = str(self.work / "refine")
        return args

    def _prior_args(self) -> list[str]:
        """4e: the gains fitted, then the head trained over the decision-driven prior."""
        plan = self.plan
        start = self.work / ("refine" if plan.decision_refine else "reading") / "model"
        args = self._train_planner_args(start, self.work / "prior", plan.decision_prior, None)
        args += ["--loss-beta", str(plan.reader_loss_beta), "--decision-prior"]
        return args + ["--decision-form", plan.decision_form]

    def train_decision_prior(self) -> bool:
        """Stages 4c-4e one after another (each starts from the one before), resumable."""
        steps = {"reading": self._reading_args()}
        if self.plan.decision_refine:
            steps["refine"] = self._refine_args()
        steps["prior"] = self._prior_args()
        self.state.setdefault("commands", {}).update(
            {name: _shown(args) for name, args in steps.items()}
        )
        self._save_state()
        redo = self.force
        for name, args in steps.items():
            if (self.work / name / "model" / "config.json").is_file() and not redo:
                continue
            shutil.rmtree(self.work / name, ignore_errors=True)
            self._run_parallel([(name, args)], monitor=name != "reading")
            redo = True  # every later step starts from this one's new output
        return redo

    def train_heads(self) -> bool:
        commands = {"planner": self._planner_args(), "pruner": self._pruner_args()}
        if self.plan.reader is not None:
            commands["reader"] = self._reader_args()
        if self.force:
            for name in commands:
                shutil.rmtree(self.work / name, ignore_errors=True)
        done = {
            "planner": (self.work / "planner" / "model" / "config.json").is_file(),
            "pruner": (self.work / "pruner" / "pruner" / "reconpruner.json").is_file(),
            "reader": (self.work / "reader" / "model" / "config.json").is_file(),
        }
        self.state.setdefault("commands", {}).update(
            {name: _shown(args) for name, args in commands.items()}
        )
        self._save_state()
        jobs = [(name, args) for name, args in commands.items() if not done[name]]
        if not jobs:
            return False
        # the reader starts from the trained planner: it waits for it unless it is already done
        later = [job for job in jobs if job[0] == "reader" and not done["planner"]]
        first = [job for job in jobs if job not in later]
        waves = [first] if self.jobs >= 2 else [[job] for job in first]
        for wave in [*waves, later]:
            if wave:
                self._run_parallel(wave)
        return True

    def _run_parallel(
        self,
        jobs: list[tuple[str, list[str]]],
        *,
        monitor: bool = True,
        width: int | None = None,
        finished: Callable[[str], None] | None = None,
    ) -> None:
        """Run `fastdrive` subcommands side by side; `monitor`: training runs with step bars.

        At most `width` at once (default: all), the next started as soon as one ends;
        `finished(name)` is called for each that succeeds. The build's `jobs` x `threads` cores
        are shared among the runs at once: a lone run (a decision stage) gets them all instead
        of leaving the others idle. A failure starts nothing more and is raised once the
        running ones have ended.
        """
        import os

        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        width = min(width or len(jobs), len(jobs))
        threads = max(self.threads, self.threads * max(1, self.jobs) // width)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        commands = self.state.setdefault("commands", {})

        def start(name: str, args: list[str]) -> tuple[str, subprocess.Popen, Any, Path]:
            if "--threads" in args:
                args = [*args]
                args[args.index("--threads") + 1] = str(threads)
            if name in commands:  # the card shows the command as it ran
                commands[name] = _shown(args)
            log_path = logs / f"{name}.log"
            self._log(f"[jobs] {name}: {_shown(args)}  (log: {log_path})")
            handle = log_path.open("a")
            proc = subprocess.Popen(
                [sys.executable, *_argv(args)], stdout=handle, stderr=subprocess.STDOUT, env=env
            )
            return name, proc, handle, log_path

        waiting, running, failed = list(jobs), [], []
        bars = _StepMonitor(
            {name: self.work / name / "run" for name, _ in jobs}, enabled=self.progress and monitor
        )
        try:
            while running or (waiting and not failed):
                while waiting and not failed and len(running) < width:
                    running.append(start(*waiting.pop(0)))
                bars.update()
                time.sleep(self.poll_seconds)
                for job in [job for job in running if job[1].poll() is not None]:
                    running.remove(job)
                    job[2].close()
                    if job[1].returncode != 0:
                        failed.append(job)
                    elif finished is not None:
                        finished(job[0])
        except KeyboardInterrupt:
            for _, proc, _, _ in running:
                proc.terminate()
            raise
        finally:
            bars.close()
            for _, _, handle, _ in running:
                handle.close()
        for name, proc, _, log_path in failed[:1]:
            tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-15:])
            raise BuildError(
                f"stage {name} failed (exit {proc.returncode}); see {log_path}:\n{tail}\n"
                "fix the cause and run the same build-default command again (it resumes)"
            )

    # -- 5. bundle --------------------------------------------------------------------------

    def assemble(self) -> bool:
        from fastdrive_ros.nn.recon_pruner import ReconPruner
        from fastdrive_ros.nn.vla import VLA
        from fastdrive_ros.train.token_cache import module_hash

        vla = VLA.from_pretrained(self.planner_dir)
        pruner = ReconPruner.load(self.pruner_dir, expected_width=None)
        vla.pruner = pruner
        vla.config.pruner = pruner.config.to_dict()
        digest = module_hash(vla)
        if self.state.get("bundle_hash") == digest and (self.out / "config.json").is_file():
            return False
        vla.save_pretrained(self.out)
        self.state["bundle_hash"] = digest
        return True

    def train_ego_mlps(self) -> bool:
        """The ego-status-only reference MLPs (one per ego-input setting) inside the bundle.

        Trained on the planner's training keyframes, so `fastdrive eval`'s `ego_mlp` row is
        the same data and the same ego inputs without the cameras (issue 8, AD-MLP style).
        """
        import torch

        from fastdrive_ros.core_types import EGO_INPUTS
        from fastdrive_ros.train.ego_mlp import (
            EgoExample,
            EgoMLPConfig,
            ego_mlp_path,
            train_bundle_ego_mlps,
        )

        digest = self.state.get("bundle_hash")
        done = self.state.get("ego_mlp", {})
        files = [ego_mlp_path(self.out, inputs) for inputs in EGO_INPUTS]
        if done.get("bundle_hash") == digest and all(f.is_file() for f in files):
            return False
        torch.set_num_threads(self.threads)
        records = self.records(self.plan.train)
        examples = [EgoExample(r.ego, r.future_xy, r.future_valid) for r in records]
        ref = self.plan.train
        summaries = train_bundle_ego_mlps(
            examples,
            self.out,
            config=EgoMLPConfig(seed=self.plan.planner.seed),
            source={"dataset": ref.dataset, "split": ref.split, "version": VERSION},
        )
        self.state["ego_mlp"] = {
            "bundle_hash": digest,
            **{
                inputs: {k: v for k, v in summary.items() if k != "config"}
                for inputs, summary in summaries.items()
            },
        }
        return True

    def diagnose(self) -> bool:
        """Image dependence of the final planner on the validation keyframes (for the card)."""
        from fastdrive_ros.nn.vla import VLA
        from fastdrive_ros.train.diagnostics import image_dependence

        digest = self.state.get("bundle_hash")
        worlds = repr([self.plan.datasets[name] for name in self.plan.probe_sets])
        if (
            self.state.get("image_dependence", {}).get("bundle_hash") == digest
            and self.state.get("probes", {}).get("bundle_hash") == digest
            and self.state["probes"].get("worlds") == worlds  # a grown world is probed again
        ):
            return False
        vla = VLA.from_pretrained(self.out)
        spec = self.spec(self.plan.val, self.plan.planner_val_samples)
        records = self.space.records(spec, progress=False)
        cache = self.space.token_cache(
            encoder=vla.vision,
            data=spec,
            records=records,
            image_size=vla.config.image_size,
            progress=False,
        )
        figures = image_dependence(planner=vla.planner, cache=cache, records=records)
        self.state["image_dependence"] = {
            "bundle_hash": digest,
            "samples": len(records),
            **figures,
        }
        self.state["probes"] = {"bundle_hash": digest, "worlds": worlds, **self.probe_sets(vla)}
        return True

    def _token_cache(self, vla, spec, records):
        """The frozen tower's tokens for `records` (built once, reused by every later stage)."""
        return self.space.token_cache(
            encoder=vla.vision,
            data=spec,
            records=records,
            image_size=vla.config.image_size,
            workers=self.jobs,
            threads=self.threads,
            progress=self.progress,
        )

    def probe_sets(self, vla) -> dict[str, Any]:
        """Issue 8's probes (train/probes.py) on every held-out set the plan names."""
        from fastdrive_ros.train.build_plan import SplitRef
        from fastdrive_ros.train.probes import planner_probes

        out: dict[str, Any] = {}
        for name in self.plan.probe_sets:
            spec = self.spec(SplitRef(name, limit=self.plan.probe_limit))
            records = self.space.records(spec, progress=False)
            cache = self._token_cache(vla, spec, records)
            seed = self.plan.datasets[name].seed
            out[name] = {
                "seed": seed,
                **planner_probes(planner=vla.planner, cache=cache, records=records),
            }
            self._log(f"[diagnose] probes on {name} (seed {seed}): {json.dumps(out[name])}")
        return out

    # -- 6. export --------------------------------------------------------------------------

    def export(self) -> bool:
        from fastdrive_ros.runtime.errors import RuntimeSetupError
        from fastdrive_ros.runtime.export_job import export_and_check
        from fastdrive_ros.runtime.model_source import load_model_parts
        from fastdrive_ros.runtime.onnx_meta import default_onnx_path

        digest = self.state.get("bundle_hash")
        done = self.state.get("export", {})
        if done.get("bundle_hash") == digest and Path(done.get("path", "")).is_file():
            return False
        parts = load_model_parts(self.out)
        ratio = parts.default_prune_ratio
        target = default_onnx_path(self.out, "reconpruner", ratio, "fp32")
        try:
            report = export_and_check(
                parts, target, selector="reconpruner", prune_ratio=ratio, threads=self.threads
            )
        except (RuntimeSetupError, ImportError) as exc:
            self._log(f"[export] skipped: {exc}")
            self.state["export"] = {"error": str(exc)}
            return True
        self.state["export"] = {
            "bundle_hash": digest,
            "path": str(report.export.path),
            "megabytes": round(report.export.path.stat().st_size / 2**20, 1),
            "prune_ratio": ratio,
            "keep": report.export.metadata.plan.keep,
            "parity_ok": report.ok,
            "parity": [c.to_dict() for c in report.parity],
        }
        if not report.ok:
            raise BuildError(f"{target} failed its ONNX Runtime parity check; see the table above")
        return True

    # -- 7. eval ----------------------------------------------------------------------------

    @property
    def main_eval(self) -> Path:
        """The card's evaluation: the eval world's every-method run with the full ego inputs."""
        run = self._eval_runs()[0]
        return run.results[run.settings.index("full")].parent

    def _eval_runs(self) -> list[EvalRun]:
        """Every evaluation of the bundle, the card's first.

        Per probe world (the eval world first): a table run, every pruner at every ratio on the
        plan's `table_scenes` first scenes (the pruning tables; one overlay on the eval world),
        and, where that leaves scenes out, a targets run on all of them with the probe rows
        issue 8's targets read; both ego-input settings from one encoder pass each.
        """
        from fastdrive_ros.eval.camera_targets import PROBE_METHODS, RANKED_METHODS, TARGET_RATIO

        plan = self.plan
        settings = ("full", "minimal") if plan.probe_sets else ("full",)
        every_ratio = ",".join(f"{r:g}" for r in plan.eval_ratios)
        worlds = [plan.eval.dataset, *(w for w in plan.probe_sets if w != plan.eval.dataset)]
        runs = []
        for world in worlds:
            main = world == plan.eval.dataset
            split, limit = (plan.eval.split, plan.eval.limit) if main else ("all", None)
            first = plan.table_scenes.get(world)
            pruners = plan.eval_pruners if main else (*RANKED_METHODS, *PROBE_METHODS)
            options = ("--ratios", every_ratio, "--overlay-samples", "1" if main else "0")
            runs.append(
                self._eval_run(
                    self.work / "tables" / world,
                    world,
                    split,
                    (*self._subset(limit, first), "--pruners", ",".join(pruners), *options),
                    settings,
                )
            )
            if world in plan.probe_sets and (split != "all" or limit or first):
                probes = ("--pruners", ",".join(PROBE_METHODS), "--ratios", f"0,{TARGET_RATIO:g}")
                runs.append(
                    self._eval_run(
                        self.work / "targets" / world,
                        world,
                        "all",
                        (*probes, "--overlay-samples", "0"),
                        settings,
                        targets=True,
                    )
                )
        return runs

    @staticmethod
    def _subset(limit: int | None, first: int | None) -> tuple[str, ...]:
        return (
            *(("--max-scenes", str(first)) if first else ()),
            *(("--max-samples", str(limit)) if limit else ()),
        )

    def _eval_run(
        self,
        folder: Path,
        world: str,
        split: str,
        options: tuple[str, ...],
        settings: tuple[str, ...],
        *,
        targets: bool = False,
    ) -> EvalRun:
        args = [
            "eval",
            *("--dataroot", str(self.data_root(world)), "--version", VERSION),
            *("--model", str(self.out), "--split", split, *options),
            *("--ego-inputs", ",".join(settings), "--seed", "0"),
            *("--out", str(folder)),
        ]
        # what the results depend on besides the bundle: the run's own options and the worlds
        key = hashlib.sha256(json.dumps([args, repr(self.plan.datasets)]).encode()).hexdigest()
        volatile = [
            "--threads",
            str(self.threads),
            "--progress" if self.progress else "--no-progress",
        ]
        return EvalRun(folder, [*args, *volatile], settings, key[:16], targets)

    def evaluate(self) -> bool:
        """Every evaluation run, `jobs` side by side, redone if its bundle, options or worlds move.

        One torch thread per run keeps both cores busy, where the main run alone left one idle.
        """
        digest = self.state.get("bundle_hash")
        done: dict[str, str] = self.state.setdefault("evals", {})
        pending = [
            run
            for run in self._eval_runs()
            if done.get(str(run.folder)) != f"{digest} {run.key}"
            or not all(path.is_file() for path in run.results)
        ]
        # the targets' runs first: the checks are known ~25 min before the tables (same total)
        pending.sort(key=lambda run: not run.targets)
        names = {f"eval-{run.folder.parent.name}-{run.folder.name}": run for run in pending}
        for run in pending:
            shutil.rmtree(run.folder, ignore_errors=True)

        def finished(name: str) -> None:  # an interrupted build keeps the runs already done
            done[str(names[name].folder)] = f"{digest} {names[name].key}"
            self._save_state()

        if pending:  # `jobs` at a time, the next as soon as one ends (their lengths differ)
            self._run_parallel(
                [(name, run.args) for name, run in names.items()],
                monitor=False,
                width=max(1, self.jobs),
                finished=finished,
            )
        self._publish_eval(self.main_eval)
        return bool(pending)

    def camera_targets(self) -> bool:
        """Issue 8's targets over the evaluation runs: <bundle>/eval/camera_targets.md.

        The checks read each world's targets run (all its scenes), or its table run where that
        already covers them; the pruning tables read the table runs.
        """
        from fastdrive_ros.eval.camera_targets import Run, render_markdown

        runs = self._eval_runs()
        key = " ".join([str(self.state.get("bundle_hash")), *(run.key for run in runs)])
        report = self.out / "eval" / "camera_targets.md"
        if self.state.get("camera_targets") == key and report.is_file():
            return False  # redone with its runs: for a new bundle, new options or new worlds
        targeted = {run.folder.name for run in runs if run.targets}
        tables = [path for run in runs if not run.targets for path in run.results]
        checks = [
            path
            for run in runs
            if run.targets or run.folder.name not in targeted
            for path in run.results
        ]
        report.parent.mkdir(parents=True, exist_ok=True)
        text = render_markdown([Run.load(p) for p in checks], [Run.load(p) for p in tables])
        report.write_text(text, encoding="utf-8")
        self.state["camera_targets"] = key
        return True

    def _publish_eval(self, folder: Path) -> None:
        target = self.out / "eval"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "results.md", "quality_vs_keep.png", "latency_vs_keep.png"):
            if (folder / name).is_file():
                shutil.copy2(folder / name, target / name)
        # the card shows what ReconPruner keeps; another method's overlay only if it has none
        overlays = sorted(
            (folder / "overlays").glob("*.png"), key=lambda p: "reconpruner" in p.stem
        )
        if overlays:
            shutil.copy2(overlays[-1], target / "overlay.png")

    # -- 8. card ----------------------------------------------------------------------------

    def write_card(self) -> Path:
        from fastdrive_ros.nn.vla import VLA
        from fastdrive_ros.train.model_card import CardInputs, write_model_card

        vla = VLA.from_pretrained(self.out)
        inputs = CardInputs(
            plan=self.plan,
            vla=vla,
            state=self.state,
            work=self.work,
            command=self.command,
            stage_summaries={
                "planner": _read_json(self.work / "planner" / "summary.json"),
                "reader": _read_json(self.work / "reader" / "summary.json"),
                "refine": _read_json(self.work / "refine" / "summary.json"),
                "prior": _read_json(self.work / "prior" / "summary.json"),
                "pruner": _read_json(self.work / "pruner" / "summary.json"),
            },
            eval_folder=self.main_eval,
            eval_results=_read_json(self.main_eval / "results.json"),
        )
        path = write_model_card(inputs, self.out / "MODEL_CARD.md")
        self._save_state()
        return path

    # -- all ----------------------------------------------------------------------------------

    def run(self, *, evaluate: bool = True, export: bool = True) -> Path:
        self._stage("data", self.make_data)
        if self.planner_from is None:
            self._stage("vision", self.train_vision)
            if self.plan.affordance is not None:  # else no line: "up to date" would mislead
                self._stage("affordance", self.train_affordances)
            self._stage("cache", self.make_caches)
            self._stage("heads", self.train_heads)
        else:
            self.state["planner_from"] = str(self.planner_from)
            self._log(
                f"[heads] stages A-C not run: tower, planner and pruner of {self.planner_from}"
            )
        if self.plan.decision_prior is not None:
            self._stage("decision", self.train_decision_prior)
        self._stage("bundle", self.assemble)
        self._stage("ego_mlp", self.train_ego_mlps)
        self._stage("diagnose", self.diagnose)
        if export:
            self._stage("export", self.export)
        if evaluate:
            self._stage("eval", self.evaluate)
            if self.plan.probe_sets:
                self._stage("targets", self.camera_targets)
        return self.write_card()


class _StepMonitor:
    """Progress bars of subprocess trainings, read from their metrics.jsonl files."""

    def __init__(self, runs: dict[str, Path], *, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.runs = runs
        self.bars = {
            name: tqdm(desc=f"{name} steps", unit="step", disable=not enabled, position=i)
            for i, name in enumerate(runs)
        }

    def update(self) -> None:
        for name, run in self.runs.items():
            steps = 0
            for log in run.glob("*metrics.jsonl"):
                steps += _count_train_lines(log)
            for log in run.glob("*/metrics.jsonl"):
                steps += _count_train_lines(log)
            bar = self.bars[name]
            bar.update(steps - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _argv(args: list[str]) -> list[str]:
    """A job's interpreter arguments: a `fastdrive` subcommand, or `-m module ...` as given."""
    return args if args[0] == "-m" else ["-m", "fastdrive_ros.cli", *args]


def _shown(args: list[str]) -> str:
    """A job as a person would type it."""
    return "python " + " ".join(args) if args[0] == "-m" else "fastdrive " + " ".join(args)


def _count_train_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if '"kind": "train"' in line)
    except OSError:
        return 0


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def build_default_command(
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")] = Path("models/default"),
    work_dir: Annotated[
        Path | None,
        typer.Option(
            help="Data, checkpoints, caches and logs (default ~/.cache/fastdrive_ros/build-*)."
        ),
    ] = None,
    scenes: Annotated[
        int, typer.Option(help="Training scenes (20 s each); val and eval scale with it.")
    ] = 48,
    seed: Annotated[int, typer.Option(help="Seed of the training data and every stage.")] = 11,
    tiny: Annotated[
        bool, typer.Option(help="Tiny config on a few tiny scenes (an end-to-end test run).")
    ] = False,
    force: Annotated[bool, typer.Option(help="Redo every stage, even finished ones.")] = False,
    jobs: Annotated[
        int, typer.Option(help="Processes side by side (data, cache, planner + pruner).")
    ] = 2,
    threads: Annotated[
        int, typer.Option(help="Torch threads per process (1 is fastest on a busy CPU).")
    ] = 1,
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="Evaluate on the held-out scenes.")
    ] = True,
    export: Annotated[
        bool, typer.Option("--export/--no-export", help="Export the encoder+pruner ONNX.")
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    affordance: Annotated[
        bool,
        typer.Option(
            help="Stage A2 (fine-tune the tower on the world's scene labels: lead kind, gap, "
            "the driver's decision) before the caches, and stage 4b (the trained planner given a "
            "SceneReader taught the same labels), as the shipped default is built. "
            "--no-affordance: the earlier default's recipe."
        ),
    ] = True,
    a2_worlds: Annotated[
        int,
        typer.Option(
            help="Training worlds stage A2 reads (each --scenes scenes, its own seed; the "
            "planner trains on the first). 1: the shipped default's recipe."
        ),
    ] = 1,
    conflicts: Annotated[
        bool,
        typer.Option(
            "--conflicts/--no-conflicts",
            help="Worlds with vehicles standing in the ego's lane and stop-and-go leads "
            "(`fastdrive synth --conflicts`), so open-loop collision can tell plans apart. "
            "--no-conflicts: the worlds the shipped default was built on.",
        ),
    ] = True,
    vision_from: Annotated[
        Path | None,
        typer.Option(
            help="Take the vision tower from this bundle instead of stage A training "
            "(same shapes; the card says so). Default: train it from scratch."
        ),
    ] = None,
    decision_prior: Annotated[
        bool,
        typer.Option(
            "--decision-prior/--no-decision-prior",
            help="Stages 4c-4e: a decision reader fitted on one more world (seed + 55), stage "
            "4b's epoch again with it, then the planner trained over the kinematic prior its "
            "decision drives (train-planner --decision-prior). --no-decision-prior: the bundle "
            "is stage 4b's planner, as built before 2026-12-04.",
        ),
    ] = True,
    planner_from: Annotated[
        Path | None,
        typer.Option(
            help="Run only the decision stages (and everything after them) on this bundle "
            "(a stage-4b planner with its scene reader and ReconPruner, e.g. an earlier "
            "default): stages A-C are not run; the card says so."
        ),
    ] = None,
) -> None:
    """Rebuild the embedded default model from scratch: data, training, export, eval, card."""
    import torch

    from fastdrive_ros.train.build_plan import default_plan, tiny_plan

    torch.set_num_threads(threads)
    try:
        plan = (
            tiny_plan(seed=seed)
            if tiny
            else default_plan(
                scenes=scenes,
                seed=seed,
                affordance=affordance,
                a2_worlds=a2_worlds,
                conflicts=conflicts,
                decision_prior=decision_prior,
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if planner_from is not None and plan.decision_prior is None:
        raise typer.BadParameter(
            "--planner-from feeds the decision stages: drop --no-decision-prior"
        )
    work = work_dir or Path.home() / ".cache" / "fastdrive_ros" / f"build-{plan.name}"
    command = "fastdrive build-default" + (" --tiny" if tiny else "") + f" --out {out}"
    command += "" if tiny or scenes == 48 else f" --scenes {scenes}"
    command += "" if seed == 11 else f" --seed {seed}"
    command += "" if work_dir is None else f" --work-dir {work_dir}"
    command += " --no-affordance" if not affordance and not tiny else ""
    command += "" if tiny or a2_worlds == 1 else f" --a2-worlds {a2_worlds}"
    command += "" if tiny or conflicts else " --no-conflicts"
    command += "" if vision_from is None else f" --vision-from {vision_from}"
    command += "" if tiny or decision_prior else " --no-decision-prior"
    command += "" if planner_from is None else f" --planner-from {planner_from}"
    try:
        builder = DefaultModelBuilder(
            plan=plan,
            out=out,
            work=work,
            force=force,
            jobs=jobs,
            threads=threads,
            progress=progress,
            command=command,
            vision_from=vision_from,
            planner_from=planner_from,
        )
        card = builder.run(evaluate=evaluate, export=export)
    except (BuildError, ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"wrote {out} and {card}")


def register(app: typer.Typer) -> None:
    """Add `build-default` to `app`."""
    app.command(name="build-default")(build_default_command)
