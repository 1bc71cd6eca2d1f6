"""`fastdrive build-default --tiny`: every stage end to end, then a rerun that skips them all."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.default_model import register
from fastdrive_ros.eval.camera_targets import PROBE_METHODS, RANKED_METHODS
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.build_plan import DatasetPlan, SplitRef, default_plan, tiny_plan

STAGES = (
    "data",
    "vision",
    "affordance",
    "cache",
    "heads",
    "decision",
    "bundle",
    "ego_mlp",
    "diagnose",
    "export",
    "eval",
    "targets",
)


def _build(out: Path, work: Path):
    app = typer.Typer()
    register(app)

    @app.command()
    def _unused() -> None:  # a second command keeps typer's subcommand parsing
        pass

    torch.set_num_threads(1)
    args = ["build-default", "--tiny", "--out", str(out), "--work-dir", str(work)]
    return CliRunner().invoke(app, [*args, "--no-progress", "--jobs", "2"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("build")
    result = _build(root / "model", root / "work")
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return root / "model", root / "work", result.output


@pytest.mark.slow
def test_every_stage_runs_and_the_bundle_plans(built) -> None:
    out, work, output = built
    for stage in STAGES:
        assert f"[{stage}] done" in output, stage
    vla = VLA.from_pretrained(out)
    assert vla.pruner is not None and vla.planner.waypoint_head is not None
    ego = EgoState(
        history_xy=np.zeros((7, 2)), speed=4.0, acceleration=0.0, yaw_rate=0.0, steering=0.0
    )
    result, selection, _ = vla.plan_frame(torch.zeros(6, 3, 56, 84), ego, prune_ratio=0.5)
    assert result.waypoints.shape == (6, 2) and selection.kept_index.numel() == 18
    onnx = list((out / "onnx").glob("*.onnx"))
    assert len(onnx) == 1
    state = json.loads((work / "state.json").read_text())
    assert state["export"]["parity_ok"] and set(state["seconds"]) >= set(STAGES)
    assert (out / "eval" / "results.md").is_file()
    # the camera-free ego MLP references live in the bundle and reach the evaluation
    assert {p.name for p in (out / "ego_mlp").glob("*.safetensors")} == {
        "full.safetensors",
        "minimal.safetensors",
    }
    results = json.loads((out / "eval" / "results.json").read_text())
    assert {"ctra", "ego_mlp"} <= {r["pruner"] for r in results["references"]}
    assert state["ego_mlp"]["minimal"]["samples"] > 0
    # issue 8's targets: the table run (the eval split, every method) and the targets run (all
    # scenes, the probe rows), each in both ego-input settings; subprocess evals with logs
    assert {p.name for p in (work / "logs").glob("eval-*.log")} == {
        "eval-tables-train.log",
        "eval-targets-train.log",
    }
    assert set(state["evals"]) == {str(work / "tables" / "train"), str(work / "targets" / "train")}
    report = (out / "eval" / "camera_targets.md").read_text()
    assert "| train | full | unpruned VLA <= 1.05 x ego_mlp |" in report
    assert "| train | minimal | content effect >= +10 %, all |" in report
    assert "### Pruning between oracle and anti-oracle, ego inputs minimal" in report
    for setting in ("full", "minimal"):
        probes = json.loads((work / "targets" / "train" / setting / "results.json").read_text())
        assert probes["metadata"]["ego_inputs"] == setting and probes["metadata"]["split"] == "all"
        assert {r["pruner"] for r in probes["records"]} == set(PROBE_METHODS)
    card = json.loads((work / "tables" / "train" / "full" / "results.json").read_text())
    assert card == results  # the card's evaluation: the eval split's every-method full run
    # the heads were trained on stage A2's tower (the affordance fine-tune of stage A's)
    stage_a, tower = VLA.from_pretrained(work / "stageA" / "bundle"), VLA.from_pretrained(out)
    assert "val_lead_ce" in state["affordance"]["last_val"]
    assert any(
        not torch.equal(value, tower.vision.state_dict()[key])
        for key, value in stage_a.vision.state_dict().items()
    )
    # stage 4b: the trained planner was given a SceneReader, taught the world's labels first,
    # and the bundle carries that planner (the plain one stays in work/planner)
    assert tower.config.scene_reader
    assert not VLA.from_pretrained(work / "planner" / "model").config.scene_reader
    reader = json.loads((work / "reader" / "summary.json").read_text())
    assert reader["reader"]["steps"] > 0 and reader["full"]["steps"] > 0
    assert "text" not in reader  # the fine-tune starts from the trained planner
    assert "--loss-beta" in state["commands"]["reader"]
    # stages 4c-4e: a decision reader fitted on the reading world (one the planner never saw),
    # stage 4b's epoch again with it, then the head over the prior its decision drives
    reading = VLA.from_pretrained(work / "reading" / "model")
    assert reading.planner.decision_reader is not None
    assert reading.planner.decision_reader.meta["train"] == str(work / "data" / "read")
    assert reading.planner.decision_reader.pace is not None  # the plan's decision_pace
    assert "--scene-reader" in state["commands"]["refine"]
    assert f"--model {work / 'refine' / 'model'} " in state["commands"]["prior"]
    assert "--decision-prior --decision-form toward" in state["commands"]["prior"]
    assert tower.config.waypoint_prior == "kinematic_decision" and tower.planner.decision_reader
    assert set(tower.config.decision_gains) == {"full", "minimal"}
    assert "--seed 12 " in state["commands"]["prior"]  # the build seed + 1: a new draw
    figures = state["image_dependence"]
    for key in ("l2_avg_own", "l2_avg_none", "l2_avg_other", "l2_avg_constant_velocity"):
        assert figures[key] >= 0, key


@pytest.mark.slow
def test_model_card_tells_what_was_built(built) -> None:
    out, _, _ = built
    card = (out / "MODEL_CARD.md").read_text()
    for heading in (
        "## Architecture",
        "## Tokens per camera",
        "## Training data",
        "## How it was built",
        "## Evaluation on held-out scenes",
        "### Targets",
    ):
        assert heading in card, heading
    assert "build-default --tiny" in card and "train-planner" in card and "train-pruner" in card
    assert "**6 merged tokens per camera**" in card and "**36 visual tokens**" in card
    assert "Constant velocity" in card and "parity: passed" in card
    assert "Stage B with a SceneReader" in card and "| 4d refine |" in card
    assert "| 4e prior |" in card and "moved a share gain of the way" in card
    assert "- Stage 4e (decision prior): gains full " in card
    assert "pruned_reading --tower" in card  # every training command is on the card
    assert "also reads the pace" in card and "the read pace with the full status" in card
    assert "Does the planner use the cameras?" in card
    assert "Do the cameras matter? (issue 8 targets)" in card


@pytest.mark.slow
def test_a_rerun_skips_finished_stages(built) -> None:
    out, work, _ = built
    weights = (out / "model.safetensors").read_bytes()
    result = _build(out, work)
    assert result.exit_code == 0, result.output
    for stage in STAGES:
        assert f"[{stage}] up to date" in result.output, stage
    assert (out / "model.safetensors").read_bytes() == weights


def test_plans_are_consistent() -> None:
    plan = default_plan(scenes=48, seed=11)
    assert {d.seed for d in plan.datasets.values()} == {11, 22, 33, 44, 66}
    assert plan.probe_sets == ("eval", "eval2") and plan.planner_ego_dropout > 0
    assert plan.datasets["val"].scenes == 6 and plan.datasets["eval"].scenes == 24
    assert plan.eval.dataset == "eval" and plan.train.dataset == "train"
    # the shipped default is built with stage A2 and the reader (stage 4b), as is the tiny build;
    # --no-affordance is the earlier recipe, which needs no world labels
    assert plan.affordance is not None and plan.reader is not None
    assert tiny_plan().affordance is not None and tiny_plan().reader is not None
    # every world has the conflicts collision needs; --no-conflicts: the shipped default's worlds
    assert all(d.conflicts for d in plan.datasets.values())
    assert not any(d.conflicts for d in default_plan(conflicts=False).datasets.values())
    assert not any(d.conflicts for d in tiny_plan().datasets.values())
    earlier = default_plan(affordance=False, decision_prior=False)
    assert earlier.affordance is None and earlier.reader is None
    assert set(plan.eval_pruners) >= {"reconpruner", "none", "random", "fastv"}
    assert tiny_plan().config == "tiny"
    with pytest.raises(ValueError, match="--scenes"):
        default_plan(scenes=1)
    # stage A2 on more worlds: each its own seed, clear of every other; the planner keeps one
    assert plan.affordance_splits == (plan.train,) and "train2" not in plan.datasets
    wider = default_plan(a2_worlds=3)
    assert [ref.dataset for ref in wider.affordance_splits] == ["train", "train2", "train3"]
    assert wider.datasets["train2"] == DatasetPlan(
        seed=66, scenes=48, seconds=20.0, conflicts=True
    )
    assert len({d.seed for d in wider.datasets.values()}) == len(wider.datasets) == 7
    assert wider.train == plan.train and wider.cache_train == plan.cache_train
    with pytest.raises(ValueError, match="--a2-worlds"):
        default_plan(a2_worlds=0)
    with pytest.raises(ValueError, match="--no-affordance"):
        default_plan(a2_worlds=2, affordance=False)
    # the decision stages read their decision reader's world: the first seed after stage A2's
    assert plan.reading_world == "read" and plan.datasets["read"].seed == 66
    assert wider.datasets["read"].seed == 11 + 3 * 55 and plan.decision_prior.seed == 12
    assert plan.eval.limit is None  # every keyframe, so each has its predecessor in memory
    before = default_plan(decision_prior=False)
    assert before.decision_prior is None and "read" not in before.datasets
    assert before.eval.limit == 96
    with pytest.raises(ValueError, match="--decision-prior needs"):
        default_plan(affordance=False)


def test_a_plan_that_cannot_be_built_is_a_usage_error(tmp_path) -> None:
    app = typer.Typer()
    register(app)
    app.command()(lambda: None)  # a second command keeps typer's subcommand parsing
    for args, message in ((["--a2-worlds", "0"], "--a2-worlds must be >= 1"),
                          (["--scenes", "1"], "--scenes must be >= 2"),
                          (["--no-decision-prior", "--planner-from", str(tmp_path)],
                           "--planner-from feeds the decision stages")):  # fmt: skip
        result = CliRunner().invoke(app, ["build-default", "--work-dir", str(tmp_path), *args])
        assert result.exit_code == 2 and message in result.output, result.output
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.slow
def test_stage_a2_reads_every_training_world(tmp_path, monkeypatch) -> None:
    from fastdrive_ros.default_model import BuildError, DefaultModelBuilder

    tiny = tiny_plan()
    plan = replace(
        tiny,
        datasets={**tiny.datasets, "train2": DatasetPlan(seed=6, scenes=1, seconds=4.5)},
        affordance_train=(tiny.train, SplitRef("train2")),
    )
    seen: dict = {}

    def fake_finetune(**kwargs):
        seen.update(kwargs)
        return SimpleNamespace(steps=0, val_history=[])

    monkeypatch.setattr("fastdrive_ros.train.affordance.finetune_affordances", fake_finetune)
    work = tmp_path / "work"
    builder = DefaultModelBuilder(plan=plan, out=tmp_path / "out", work=work, progress=False)
    builder.make_data()
    VLA.build(builder.vla_config, seed=0).save_pretrained(builder.stage_a_bundle)
    builder._stage("affordance", builder.train_affordances)

    tokens = {record.token for record in seen["train_records"]}
    first = {record.token for record in builder.records(tiny.train, None)}
    second = {record.token for record in builder.records(SplitRef("train2"))}
    assert first and second and tokens == first | second  # both worlds' keyframes
    assert tokens <= seen["train_labels"].keys()  # every one labelled
    assert builder.state["affordance"]["worlds"] == ["train", "train2"]
    # stage 4b's reader-only phase reads the other world too; the planner stays on `train`
    reader = builder._reader_args()
    assert reader[reader.index("--reader-dataroot") + 1] == str(builder.data_root("train2"))
    assert reader[reader.index("--dataroot") + 1] == str(builder.data_root("train"))
    # the same folder under a one-world plan: its stage-A2 tower was not trained that way
    VLA.from_pretrained(builder.stage_a_bundle).save_pretrained(builder.tower_bundle)
    one_world = DefaultModelBuilder(plan=tiny, out=tmp_path / "out", work=work, progress=False)
    with pytest.raises(BuildError, match=r"\['train', 'train2'\].*--force"):
        one_world.train_affordances()
    assert "--reader-dataroot" not in one_world._reader_args()


def test_vision_from_reuses_a_bundles_tower(tmp_path) -> None:
    from fastdrive_ros.default_model import DefaultModelBuilder
    from fastdrive_ros.nn.configs import tiny_config
    from fastdrive_ros.nn.vla import VLA

    source = VLA.build(tiny_config(cameras=6), seed=9)
    source.save_pretrained(tmp_path / "source")
    builder = DefaultModelBuilder(
        plan=tiny_plan(), out=tmp_path / "out", work=tmp_path / "work", progress=False,
        vision_from=tmp_path / "source",
    )  # fmt: skip
    assert builder.train_vision()
    stage_a = VLA.from_pretrained(builder.stage_a_bundle)
    for key, value in source.vision.state_dict().items():
        assert torch.equal(stage_a.vision.state_dict()[key], value), key
    assert stage_a.config.ego_encoder  # the plan's config, only the tower comes from the source
    assert builder.state["vision"]["from"] == str(tmp_path / "source")


def test_planner_from_runs_only_the_decision_stages_on_a_bundle(tmp_path) -> None:
    from fastdrive_ros.default_model import DefaultModelBuilder

    source = tmp_path / "source"
    builder = DefaultModelBuilder(
        plan=tiny_plan(), out=tmp_path / "out", work=tmp_path / "work", progress=False,
        planner_from=source,
    )  # fmt: skip
    reading = builder._reading_args()
    assert reading[:2] == ["-m", "fastdrive_ros.train.pruned_reading"]
    assert reading[reading.index("--tower") + 1] == str(source)
    assert reading[reading.index("--bundle-out") + 1] == str(tmp_path / "work/reading/model")
    assert "--pace" in reading
    refine = builder._refine_args()  # 4d: stage 4b's recipe rerun on the reading bundle
    assert refine[refine.index("--model") + 1] == str(tmp_path / "work/reading/model")
    assert refine[refine.index("--out") + 1] == str(tmp_path / "work/refine")
    prior = builder._prior_args()  # 4e starts from 4d's planner ...
    assert prior[prior.index("--model") + 1] == str(tmp_path / "work/refine/model")
    unrefined = DefaultModelBuilder(
        plan=replace(tiny_plan(), decision_refine=False), out=tmp_path / "out",
        work=tmp_path / "work", progress=False, planner_from=source,
    )  # fmt: skip
    prior = unrefined._prior_args()  # ... or, without 4d, from the reading bundle itself
    assert prior[prior.index("--model") + 1] == str(tmp_path / "work/reading/model")
    assert builder.pruner_dir == source / "pruner"
    assert builder.planner_dir == tmp_path / "work/prior/model"
    # without the decision stages there is nothing for the bundle to feed
    with pytest.raises(ValueError, match="decision stages"):
        DefaultModelBuilder(
            plan=replace(tiny_plan(), decision_prior=None), out=tmp_path / "o",
            work=tmp_path / "w", progress=False, planner_from=source,
        )  # fmt: skip


def test_every_evaluation_run_is_listed_once_main_first(tmp_path) -> None:
    from fastdrive_ros.default_model import DefaultModelBuilder

    builder = DefaultModelBuilder(
        plan=default_plan(), out=tmp_path / "out", work=tmp_path / "work", progress=False
    )
    runs = builder._eval_runs()
    work = tmp_path / "work"
    assert [run.folder for run in runs] == [
        work / "tables" / "eval",  # the card's tables, the eval world's first scenes
        work / "targets" / "eval",
        work / "tables" / "eval2",
        work / "targets" / "eval2",
    ]
    assert builder.main_eval == work / "tables" / "eval" / "full"

    def option(args: list[str], name: str) -> str:
        return args[args.index(name) + 1]

    main, main_targets, tables2, targets2 = (run.args for run in runs)
    assert option(main, "--pruners") == ",".join(builder.plan.eval_pruners)
    assert option(main, "--overlay-samples") == "1"
    assert option(tables2, "--overlay-samples") == option(targets2, "--overlay-samples") == "0"
    # the held-out worlds hold 3x the scenes the every-method tables run on
    plan = builder.plan
    assert plan.datasets["eval"].scenes == 3 * plan.table_scenes["eval"] == 24
    assert plan.datasets["eval2"].scenes == 3 * plan.table_scenes["eval2"] == 21
    assert [option(a, "--max-scenes") for a in (main, tables2)] == ["8", "7"]
    assert "--max-scenes" not in main_targets and "--max-scenes" not in targets2
    for run in runs:
        args = run.args
        assert option(args, "--out") == str(run.folder)
        assert option(args, "--model") == str(tmp_path / "out")
        assert option(args, "--ego-inputs") == "full,minimal"  # one encoder pass for both
        assert run.results == [run.folder / s / "results.json" for s in ("full", "minimal")]
        assert "--max-samples" not in args  # every keyframe: the decision reader needs them
        expected = "0,0.75" if run.targets else "0,0.25,0.5,0.75"
        assert option(args, "--ratios") == expected
    assert option(tables2, "--pruners").split(",") == [*RANKED_METHODS, *PROBE_METHODS]
    assert option(targets2, "--pruners").split(",") == list(PROBE_METHODS)
    # a run is redone when what it depends on changes: its options or the worlds
    grown = DefaultModelBuilder(
        plan=replace(plan, datasets={**plan.datasets, "eval2": replace(
            plan.datasets["eval2"], scenes=30)}),
        out=tmp_path / "out", work=work, progress=False,
    )  # fmt: skip
    assert [r.key for r in grown._eval_runs()] != [r.key for r in runs]


def test_the_queue_starts_the_targets_runs_first(tmp_path, monkeypatch) -> None:
    from fastdrive_ros.default_model import DefaultModelBuilder

    builder = DefaultModelBuilder(
        plan=default_plan(), out=tmp_path / "out", work=tmp_path / "work", progress=False
    )
    started: list[str] = []
    monkeypatch.setattr(
        builder, "_run_parallel", lambda jobs, **_: started.extend(n for n, _ in jobs)
    )
    monkeypatch.setattr(builder, "_publish_eval", lambda folder: None)
    assert builder.evaluate()
    assert started == [
        "eval-targets-eval", "eval-targets-eval2", "eval-tables-eval", "eval-tables-eval2"
    ]  # fmt: skip
    assert builder._eval_runs()[0].folder.parent.name == "tables"  # the card's order is kept


def test_jobs_run_a_few_at_a_time_and_a_failure_stops_the_queue(tmp_path) -> None:
    from fastdrive_ros.default_model import BuildError, DefaultModelBuilder

    builder = DefaultModelBuilder(
        plan=tiny_plan(), out=tmp_path / "out", work=tmp_path / "work", progress=False
    )
    builder.poll_seconds = 0.1
    ok, bad = ["-m", "json.tool", "--help"], ["-m", "json.tool", str(tmp_path / "missing")]
    done: list[str] = []
    builder._run_parallel([("a", ok), ("b", ok), ("c", ok)], width=2, finished=done.append)
    assert sorted(done) == ["a", "b", "c"]
    done.clear()
    with pytest.raises(BuildError, match="stage bad failed"):
        builder._run_parallel([("d", ok), ("bad", bad), ("e", ok)], width=1, finished=done.append)
    assert done == ["d"]  # the queue stopped at the failure: e never started
    assert not (tmp_path / "work" / "logs" / "e.log").exists()
