"""The eval harness on hand-made samples and a small fake model: files, schema, reuse, failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely
import torch

from fastdrive_ros.core_types import CAMERA_NAMES, EgoState, PlanFailure, PlanOk
from fastdrive_ros.data.cameras import rig
from fastdrive_ros.data.types import AgentBox, CameraImage, KeyframeSample, MapGeometry
from fastdrive_ros.eval.flops import TextShape, VisionShape
from fastdrive_ros.eval.harness import OverlaySpec
from fastdrive_ros.eval.model_api import EvalModel, ModelShapes, PlanOutput
from fastdrive_ros.eval.records import EvalResults
from fastdrive_ros.eval.runner import evaluate, spread_indices, write_outputs
from fastdrive_ros.nn.selection import Selection, VisualTokens

IMAGE = (56, 84)  # model input (H, W): 2 x 3 merged tokens per camera


def make_sample(folder: Path, i: int) -> KeyframeSample:
    rng = np.random.default_rng(i)
    cameras = []
    for calib in rig(160, 90):
        path = folder / f"{calib.channel}_{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (90, 160, 3), dtype=np.uint8))
        cameras.append(
            CameraImage(calib.channel, path, path.name, 0, calib, f"sd{i}{calib.channel}")
        )
    speed = 5.0 + i
    # the logged car slows down: the constant-velocity reference overshoots
    t = 0.5 * np.arange(1, 7)
    future = np.stack([speed * t - 0.5 * t**2, np.zeros(6)], axis=1)
    car = AgentBox(np.array([12.0, 3.5]), np.array([1.9, 4.5, 1.6]), 0.0, "vehicle.car", "c")
    road = shapely.box(-20, -4, 80, 6)
    return KeyframeSample(
        token=f"s{i}",
        scene_name="scene-0000",
        scene_token="sc",
        timestamp_us=i,
        cameras=tuple(cameras),
        ego=EgoState(np.zeros((7, 2)), speed=speed, acceleration=0.0, yaw_rate=0.0, steering=0),
        future_xy=future,
        future_yaw=np.zeros(6),
        future_valid=np.ones(6, bool),
        future_boxes=tuple((car,) for _ in range(6)),
        map=MapGeometry(drivable_area=road, road_boundary=road.boundary),
        ego_translation=np.zeros(3),
        ego_rotation=np.array([1.0, 0, 0, 0]),
    )


class TopBright:
    """Encoder-stage fake: keeps the brightest tokens."""

    name, stage = "reconpruner", "encoder"

    def select(self, visual: VisualTokens, keep: int) -> Selection:
        order = torch.topk(visual.tokens.sum(1), keep).indices
        return Selection(kept_index=torch.sort(order).values)


class FirstK:
    name, stage = "random", "encoder"

    def select(self, visual: VisualTokens, keep: int) -> Selection:
        return Selection(kept_index=torch.arange(keep))


class FakeModel:
    """Tiny stand-in with the harness protocol: token = mean colour of a 28 px cell."""

    name = "fake"
    image_size = IMAGE
    camera_names = CAMERA_NAMES
    shapes = ModelShapes(
        vision=VisionShape(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=3
        ),
        text=TextShape(
            num_hidden_layers=2,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            num_key_value_heads=1,
            vocab_size=50,
            head_dim=16,
        ),
    )

    def __init__(self) -> None:
        self.encodes = 0
        self.plans: list[int] = []

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        return torch.nn.functional.interpolate(x, size=IMAGE, mode="bilinear")

    def encode(self, pixels: torch.Tensor) -> VisualTokens:
        self.encodes += 1
        cells = torch.nn.functional.avg_pool2d(pixels, 28)  # [C, 3, 2, 3]
        tokens = cells.permute(0, 2, 3, 1).reshape(-1, 3)
        grid = torch.tensor([[1, 4, 6]] * pixels.shape[0])
        return VisualTokens(tokens=tokens, grid_thw=grid)

    def selector(self, name: str, *, seed: int):
        return {"reconpruner": TopBright(), "random": FirstK(), "fastv": "fastv"}[name]

    def selector_stage(self, name: str) -> str:
        return "llm" if name == "fastv" else "encoder"

    def plan(
        self, visual, selection, ego, *, llm_selector=None, keep=None, memory=None
    ) -> PlanOutput:
        k = int(selection.kept_index.numel()) if keep is None else keep
        self.plans.append(k)
        timings = {"prefill": 0.1 * k, "decode": 2.0}
        if llm_selector == "fastv" and ego.speed > 6.5:
            return PlanOutput(PlanFailure("unparseable", "fake", "xx", timings))
        t = 0.5 * np.arange(1, 7)
        lateral = 0.2 * (1.0 - k / visual.tokens.shape[0])  # fewer tokens, worse plans
        waypoints = np.stack([ego.speed * t - 0.5 * t**2, np.full(6, lateral)], axis=1)
        kept = torch.arange(k) if llm_selector is not None else None
        lengths = (40, k + 4) if llm_selector is not None else None
        return PlanOutput(
            PlanOk(waypoints, "t", 3, timings), kept_index=kept, tokens_per_layer=lengths
        )

    def text_tokens(self, ego: EgoState) -> int:
        return 4

    def synchronize(self) -> None:
        pass


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalResults, Path, FakeModel]:
    folder = tmp_path_factory.mktemp("eval")
    samples = [make_sample(folder, i) for i in range(3)]
    model = FakeModel()
    assert isinstance(model, EvalModel)
    out = folder / "out"
    results = evaluate(
        samples,
        model,
        pruners=["reconpruner", "random", "fastv"],
        ratios=[0.0, 0.5, 0.75],
        overlay=OverlaySpec(folder=out / "overlays", ratio=0.75, sample_indices=(0,)),
        metadata={"model": "fake", "device": "cpu"},
        progress=False,
    )
    write_outputs(results, out)
    return results, out, model


def test_encoder_runs_once_per_sample_and_unpruned_once(evaluated) -> None:
    results, _, model = evaluated
    assert model.encodes == 3
    # per sample: unpruned once + 3 pruners x 2 ratios > 0
    assert len(model.plans) == 3 * (1 + 3 * 2)
    zero = [r for r in results.records if r.prune_ratio == 0]
    assert [r.pruner for r in zero] == ["none", "reconpruner", "random", "fastv"]
    assert all(r.shared_with == "none@0" for r in zero[1:])
    assert all(r.metric("l2") == zero[0].metric("l2") for r in zero)


def test_records_hold_kept_tokens_metrics_and_failures(evaluated) -> None:
    results, _, _ = evaluated
    r50 = results.find("reconpruner", 0.5)
    assert (r50.kept_tokens, r50.total_tokens) == (18, 36)
    assert results.find("random", 0.75).kept_tokens == 9
    assert results.unpruned.metric("l2") == pytest.approx(0.0)
    assert r50.metric("l2") == pytest.approx(0.1)
    assert r50.rel_l2 is None  # unpruned L2 is 0: no relative value
    fastv = results.find("fastv", 0.75)
    assert fastv.plan_failures == 1 and fastv.failure_reasons == {"unparseable": 1}
    assert fastv.prefill_ms == pytest.approx(0.1 * 9)
    assert r50.encoder_tflops > 0 and r50.prefill_tflops < results.unpruned.prefill_tflops
    assert fastv.prefill_tflops > results.find("random", 0.75).prefill_tflops  # 40 tokens first


def test_results_json_schema_is_complete_and_finite(evaluated) -> None:
    _, out, _ = evaluated
    data = json.loads((out / "results.json").read_text())
    assert {"metadata", "records", "references", "targets", "units"} <= set(data)
    required = {"pruner", "prune_ratio", "kept_tokens", "total_tokens", "samples"}
    required |= {
        f"{m}_{h}" for m in ("l2", "collision", "intersection") for h in ("1s", "2s", "3s", "avg")
    }
    required |= {"rel_l2", "rel_collision", "rel_intersection", "encoder_ms", "pruner_ms"}
    required |= {"prefill_ms", "decode_ms", "decode_ms_per_token", "encoder_tflops"}
    required |= {"prefill_tflops", "plan_failures"}
    for record in data["records"]:
        assert required <= set(record)
        assert math.isfinite(record["l2_avg"]) and math.isfinite(record["collision_avg"])
    cv = next(r for r in data["references"] if r["pruner"] == "constant_velocity")
    assert cv["samples"] == 3 and math.isfinite(cv["l2_avg"])
    assert EvalResults.load(out / "results.json").find("random", 0.5).kept_tokens == 18


def test_markdown_and_plots_are_written(evaluated) -> None:
    _, out, _ = evaluated
    md = (out / "results.md").read_text()
    assert "Planning quality" in md and "## Efficiency" in md and "## Targets" in md
    assert "Constant velocity" in md and "Retain 25 % tokens" in md
    for name in ("quality_vs_keep.png", "latency_vs_keep.png"):
        assert cv2.imread(str(out / name)) is not None
    overlays = sorted(p.name for p in (out / "overlays").glob("*.png"))
    assert overlays == ["s0_fastv.png", "s0_random.png", "s0_reconpruner.png"]
    assert cv2.imread(str(out / "overlays" / "s0_reconpruner.png")).shape[0] > 100


def test_bad_methods_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pruner"):
        evaluate([], FakeModel(), pruners=["magic"], ratios=[0.5], progress=False)
    with pytest.raises(ValueError, match="prune ratios"):
        evaluate([], FakeModel(), pruners=["random"], ratios=[1.0], progress=False)


def test_spread_indices() -> None:
    assert spread_indices(10, None) == list(range(10))
    assert spread_indices(10, 3) == [0, 4, 9]
    with pytest.raises(ValueError):
        spread_indices(10, 0)


class RememberingModel(FakeModel):
    """Keeps (kept count, time) in each frame's memory slot and records what it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: list[tuple[int, float | None]] = []

    def plan(self, visual, selection, ego, *, llm_selector=None, keep=None, memory=None):
        k = int(selection.kept_index.numel()) if keep is None else keep
        previous = None if memory.previous is None else tuple(memory.previous.tolist())
        if previous is not None:
            assert previous[0] == k  # the method's own memory, not another's
        self.handed.append((k, None if previous is None else previous[1]))
        memory.keep(torch.tensor([k, memory.stamp_s]))
        return super().plan(visual, selection, ego, llm_selector=llm_selector, keep=keep)


def test_each_method_remembers_its_own_keyframe_before(tmp_path: Path) -> None:
    """Keyframes 0.5 s apart: each method's planner gets its own corridor of the one before."""
    from dataclasses import replace

    times = [(0, "scene-a"), (500_000, "scene-a"), (1_000_000, "scene-a"), (1_500_000, "scene-b")]
    samples = [
        replace(make_sample(tmp_path, i), timestamp_us=t, scene_name=scene)
        for i, (t, scene) in enumerate(times)
    ]
    model = RememberingModel()
    evaluate(samples, model, pruners=["reconpruner"], ratios=[0.5], progress=False)
    per_sample = [model.handed[2 * i : 2 * i + 2] for i in range(len(samples))]
    assert all(before is None for _, before in per_sample[0])  # first keyframe: no memory
    assert [before for _, before in per_sample[1]] == [0.0, 0.0]
    assert [before for _, before in per_sample[2]] == [0.5, 0.5]
    assert all(before is None for _, before in per_sample[3])  # another scene starts afresh
