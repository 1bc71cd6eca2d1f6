"""The harness with both ego-input settings, the probes, the references and the discrimination.

A fake model whose plan depends on the tokens it is given (their mean brightness sets a lateral
offset) runs on hand-made samples of three scenes with foreground masks, so every probe changes
the plan in a way the test can predict.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_eval_harness import FakeModel, make_sample

from fastdrive_ros.core_types import PlanOk
from fastdrive_ros.eval.harness import token_fg_share
from fastdrive_ros.eval.model_api import PlanOutput
from fastdrive_ros.eval.pairing import partner_indices
from fastdrive_ros.eval.records import EvalResults
from fastdrive_ros.eval.runner import (
    Setting,
    encoding_order,
    evaluate,
    evaluate_settings,
    load_ego_mlp,
    write_outputs,
)
from fastdrive_ros.nn.registry import make_selector
from fastdrive_ros.train.ego_mlp import EgoExample, EgoMLPConfig, train_bundle_ego_mlps

SCENES = ("scene-a", "scene-b", "scene-c")


def _with_masks(folder: Path, i: int) -> object:
    """make_sample's keyframe in scene SCENES[i % 3], each camera with a foreground mask whose
    left third is foreground (so the first token column of every camera has share 1)."""
    sample = make_sample(folder, i)
    cameras = []
    for camera in sample.cameras:
        mask = np.zeros((90, 160), np.uint8)
        mask[:, :53] = 255
        path = folder / f"{camera.channel}_{i}_fg.png"
        cv2.imwrite(str(path), mask)
        cameras.append(replace(camera, fg_mask=path))
    ego = replace(sample.ego, acceleration=-1.0 + 0.3 * i, yaw_rate=0.05 * i)
    return replace(
        sample, cameras=tuple(cameras), scene_name=SCENES[i % 3], ego=ego, token=f"s{i}"
    )


class ContentModel(FakeModel):
    """Plans depend on the content and the number of the tokens, and record the egos seen."""

    def __init__(self) -> None:
        super().__init__()
        self.egos: list = []
        self.seen: list[tuple[int, float]] = []

    def selector(self, name: str, *, seed: int):
        if name in ("oracle_fg", "anti_oracle", "shuffled", "no_images"):
            return make_selector(name)
        return super().selector(name, seed=seed)

    def plan(
        self, visual, selection, ego, *, llm_selector=None, keep=None, memory=None
    ) -> PlanOutput:
        self.egos.append(ego)
        tokens = selection.tokens
        if tokens is None:
            tokens = visual.tokens[selection.kept_index]
        brightness = float(tokens.mean()) if tokens.numel() else 0.0
        self.seen.append((int(selection.kept_index.numel()), brightness))
        t = 0.5 * np.arange(1, 7)
        waypoints = np.stack([ego.speed * t - 0.5 * t**2, np.full(6, brightness)], axis=1)
        return PlanOutput(PlanOk(waypoints, None, 0, {"prefill": 1.0, "decode": 0.0}))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list:
    folder = tmp_path_factory.mktemp("settings")
    return [_with_masks(folder, i) for i in range(6)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, samples: list) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    examples = [EgoExample(s.ego, s.future_xy, s.future_valid) for s in samples]
    train_bundle_ego_mlps(examples, folder, config=EgoMLPConfig(hidden=8, epochs=5))
    return folder


PROBES = ["oracle_fg", "anti_oracle", "shuffled", "no_images"]


def _run(samples: list, bundle: Path | None, inputs: str) -> tuple[EvalResults, ContentModel]:
    model = ContentModel()
    mlp, note = load_ego_mlp(bundle, inputs) if bundle is not None else (None, "no bundle")
    results = evaluate(
        samples,
        model,
        pruners=["reconpruner", *PROBES],
        ratios=[0.0, 0.5],
        ego_inputs=inputs,  # type: ignore[arg-type]
        ego_mlp=mlp,
        ego_mlp_missing=None if mlp else note,
        bootstrap_draws=50,
        progress=False,
    )
    return results, model


@pytest.mark.parametrize("inputs", ["full", "minimal"])
def test_every_plan_and_reference_reads_the_setting(samples, bundle, inputs: str) -> None:
    results, model = _run(samples, bundle, inputs)
    assert results.metadata["ego_inputs"] == inputs
    assert {e.inputs for e in model.egos} == {inputs}
    refs = {r.pruner: r for r in results.references}
    assert set(refs) == {"constant_velocity", "ctra", "ego_mlp", "ground_truth"}
    for ref in refs.values():
        assert ref.pruner == ref.pruner and ref.metric("l2") is not None and ref.by_event
    same = refs["ctra"].metric("l2") == pytest.approx(refs["constant_velocity"].metric("l2"))
    # minimal: CTRA has no acceleration or yaw rate to roll out, so it is constant velocity
    assert same if inputs == "minimal" else not same
    if inputs == "minimal":
        assert all(np.allclose(e.history_xy[:, 1], 0) for e in model.egos)


def test_probes_run_behind_the_selection_interface(samples, bundle) -> None:
    results, model = _run(samples, bundle, "full")
    rows = {r.key: r for r in results.records}
    # whole-frame probes: computed at ratio 0 only, never shared with the unpruned row
    assert rows["shuffled@0"].shared_with is None and rows["no_images@0"].shared_with is None
    assert "shuffled@0.5" not in rows and "no_images@0.5" not in rows
    assert rows["no_images@0"].kept_tokens == 0
    assert rows["oracle_fg@0"].shared_with == "none@0"
    assert rows["oracle_fg@0.5"].kept_tokens == rows["anti_oracle@0.5"].kept_tokens == 18
    # encoder: once per keyframe, its use as another scene's partner (shuffled) included
    assert model.encodes == len(samples)
    # the oracle keeps the foreground column (share 1), the anti-oracle never does
    assert rows["oracle_fg@0.5"].metric("l2") != rows["anti_oracle@0.5"].metric("l2")
    disc = results.discrimination
    assert {"content_effect", "image_effect", "oracle_gap@0.5", "verdict"} <= set(disc)
    assert disc["content_effect"]["all"]["scenes"] == 3
    assert disc["content_effect"]["worse"] == "shuffled@0"


def test_both_settings_come_from_one_encoder_pass(samples, bundle) -> None:
    settings = []
    for inputs in ("full", "minimal"):
        mlp, _ = load_ego_mlp(bundle, inputs)
        settings.append(Setting(inputs, mlp))  # type: ignore[arg-type]
    model = ContentModel()
    both = evaluate_settings(
        samples,
        model,
        settings,
        pruners=["reconpruner", *PROBES],
        ratios=[0.0, 0.5],
        bootstrap_draws=50,
        progress=False,
    )
    assert model.encodes == len(samples)  # one pass serves both settings and the partners
    for inputs in ("full", "minimal"):
        alone, _ = _run(samples, bundle, inputs)
        shared = both[inputs]
        assert shared.metadata["ego_inputs"] == inputs
        rows = [(r.key, r.metric("l2")) for r in (*shared.records, *shared.references)]
        expected = [(r.key, r.metric("l2")) for r in (*alone.records, *alone.references)]
        assert [k for k, _ in rows] == [k for k, _ in expected]
        assert dict(rows) == pytest.approx(dict(expected))
        assert shared.discrimination["content_effect"] == alone.discrimination["content_effect"]
    with pytest.raises(ValueError, match="each ego-input setting once"):
        evaluate_settings(samples, model, [settings[0], settings[0]], pruners=["none"], ratios=[0])


def test_encoding_order_follows_the_pairing_cycle() -> None:
    scenes = ["b", "a", "b", "c", "a", "c", "d"]
    partners = partner_indices(scenes, seed=3)
    order = encoding_order(scenes, partners)
    assert sorted(order) == list(range(len(scenes)))  # every keyframe once
    visited = list(dict.fromkeys(scenes[i] for i in order))
    assert visited[0] == "a" and len(visited) == 4  # from the first scene by name, each whole
    for scene, lender in zip(visited, visited[1:], strict=False):  # next: the scene lending
        assert all(scenes[partners[i]] == lender for i in range(len(scenes)) if scenes[i] == scene)
    for scene in visited:  # keyframes keep their order inside a scene (frame memory)
        mine = [i for i in order if scenes[i] == scene]
        assert mine == sorted(mine)
    assert encoding_order(scenes, None) == list(range(len(scenes)))


def test_shuffled_tokens_come_from_another_scene(samples) -> None:
    model = ContentModel()
    evaluate(samples, model, pruners=["shuffled"], ratios=[0.0], progress=False)
    # per sample: the unpruned plan, then the shuffled plan; brightness differs (other images)
    own = [b for k, b in model.seen[0::2]]
    other = [b for k, b in model.seen[1::2]]
    assert all(abs(a - b) > 1e-6 for a, b in zip(own, other))
    assert sorted(np.round(other, 6)) == sorted(np.round(own, 6))  # each lends to another


def test_missing_ego_mlp_is_said_clearly(samples, tmp_path: Path) -> None:
    mlp, note = load_ego_mlp(tmp_path, "minimal")
    assert mlp is None and "train-ego-mlp" in note and "minimal" in note
    results, _ = _run(samples, None, "minimal")
    assert "ego_mlp" not in {r.pruner for r in results.references}
    assert results.metadata["ego_mlp_missing"] == "no bundle"
    out = tmp_path / "out"
    write_outputs(results, out)
    text = (out / "results.md").read_text()
    assert "**not evaluated**: no bundle" in text
    assert "Can this benchmark tell token sets apart?" in text
    assert "discriminate" in text and (out / "l2_by_event.png").stat().st_size > 1000
    data = json.loads((out / "results.json").read_text())
    assert data["metadata"]["ego_inputs"] == "minimal" and data["discrimination"]["verdict"]
    assert all("by_event" in r for r in data["records"] + data["references"])
    for row in data["records"] + data["references"]:
        counted = [c for c in row["by_event"].values() if c["samples"]]
        assert counted and all(c["collision_avg"] is not None for c in counted)
    assert "Collision Avg (%) by the same groups" in text
    loaded = EvalResults.load(out / "results.json")
    assert loaded.discrimination == data["discrimination"]


def test_bad_probe_requests_are_clear_errors(samples) -> None:
    with pytest.raises(ValueError, match="ratio 0 only.*add 0"):
        evaluate(samples, ContentModel(), pruners=["shuffled"], ratios=[0.5], progress=False)
    with pytest.raises(ValueError, match="unknown pruner.*oracle_fg"):
        evaluate(samples, ContentModel(), pruners=["oracle"], ratios=[0.5], progress=False)
    with pytest.raises(ValueError, match="at least two scenes"):
        one_scene = [replace(s, scene_name="x") for s in samples[:2]]
        evaluate(one_scene, ContentModel(), pruners=["shuffled"], ratios=[0], progress=False)
    no_masks = [
        replace(s, cameras=tuple(replace(c, fg_mask=None) for c in s.cameras)) for s in samples
    ]
    with pytest.raises(ValueError, match="nuScenes-FG mask.*fastdrive masks"):
        evaluate(no_masks, ContentModel(), pruners=["oracle_fg"], ratios=[0.5], progress=False)
    wrong, _ = load_ego_mlp(Path("/nonexistent"), "full")
    assert wrong is None


def test_fg_share_of_each_token_comes_from_the_masks(samples) -> None:
    model = ContentModel()
    visual = model.encode(model.preprocess(torch.zeros(6, 90, 160, 3, dtype=torch.uint8)))
    share = token_fg_share(samples[0], model.camera_names, visual, model.image_size)
    # per camera 2 x 3 tokens of 28 px; the mask's left third covers the first token column
    expected = np.tile([1.0, 0.0, 0.0], 12)
    assert share.shape == (36,)
    assert share == pytest.approx(expected, abs=0.05)
    kept = make_selector("oracle_fg").select(
        replace(visual, aux={"fg_share": torch.from_numpy(share)}), 12
    )
    assert kept.kept_index.tolist() == list(range(0, 36, 3))
