"""The planner's SceneReader: what it reads, that it starts silent, and that training teaches it
the world's labels (issue 8: a short path from the front camera's kept tokens to the plan)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from train_tiny import VERSION, tiny_bundle, tiny_world
from typer.testing import CliRunner

from fastdrive_ros.core_types import CAMERA_NAMES, LEAD_KINDS, EgoState, restrict_ego
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.forward_only import forward_only
from fastdrive_ros.nn.vla import VLA, VLAConfig
from fastdrive_ros.train.affordance import fact_terms
from fastdrive_ros.train.cli import register
from fastdrive_ros.train.records import read_records

torch.set_num_threads(2)
GRID = torch.tensor([[1, 4, 6]] * 2)  # two cameras of 6 merged tokens each (tiny_config)


def _ego(speed: float = 6.0) -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([speed * t, 0 * t], axis=1),
        speed=speed,
        acceleration=0.0,
        yaw_rate=0.0,
        steering=0.0,
        command="straight",
    )


def _reader_vla(seed: int = 3) -> VLA:
    vla = VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=seed).eval()
    vla.add_scene_reader()
    return vla


def _speak(vla: VLA) -> None:
    """Weights for the zero-initialised reader projection and waypoint head, as training gives."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        vla.planner.scene_reader.project.weight.normal_(0, 0.5, generator=gen)
        vla.planner.waypoint_head.mlp[-1].weight.normal_(0, 0.5, generator=gen)


def _plan(vla: VLA, tokens: torch.Tensor, index: torch.Tensor, ego: EgoState) -> np.ndarray:
    return vla.planner.plan(kept_tokens=tokens, kept_index=index, grid_thw=GRID, ego=ego).waypoints


def test_a_new_reader_is_silent_and_the_config_records_it(tmp_path: Path) -> None:
    vla = VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=3).eval()
    with torch.no_grad():  # a planner that has learned something (its head is zero at first)
        vla.planner.waypoint_head.mlp[-1].weight.normal_(0, 0.5)
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(1))
    index = torch.arange(12)
    before = _plan(vla, tokens, index, _ego())
    vla.add_scene_reader()
    assert vla.config.scene_reader
    assert np.allclose(_plan(vla, tokens, index, _ego()), before)  # silent until trained
    reader = vla.planner.scene_reader
    vla.add_scene_reader()  # idempotent: keeps the reader it has
    assert vla.planner.scene_reader is reader
    _speak(vla)
    speaking = _plan(vla, tokens, index, _ego())
    assert not np.allclose(speaking, before)
    vla.save_pretrained(tmp_path / "bundle")
    loaded = VLA.from_pretrained(tmp_path / "bundle").eval()
    assert loaded.config.scene_reader
    assert np.allclose(_plan(loaded, tokens, index, _ego()), speaking)


def test_the_reader_needs_the_front_camera_first() -> None:
    config = tiny_config(cameras=2, ego_numbers=True)
    with pytest.raises(ValueError, match="CAM_FRONT"):
        VLAConfig(**{**config.__dict__, "camera_names": CAMERA_NAMES[1:3], "scene_reader": True})


def test_the_reader_sees_only_the_kept_front_tokens() -> None:
    vla = _reader_vla()
    planner = vla.planner
    _speak(vla)
    gen = torch.Generator().manual_seed(2)
    tokens, index = torch.randn(12, 64, generator=gen), torch.arange(12)
    egos = [_ego()]
    with torch.no_grad():
        row, facts = planner.read_scene([tokens], [index], GRID, egos)
        side = tokens.clone()
        side[6:] = torch.randn(6, 64, generator=gen)  # the second camera changes
        assert torch.allclose(planner.read_scene([side], [index], GRID, egos)[0], row)
        front = tokens.clone()
        front[:3] = torch.randn(3, 64, generator=gen)
        assert not torch.allclose(planner.read_scene([front], [index], GRID, egos)[0], row)
        # a pruner that kept no front token leaves the reader nothing: the same as empty input
        no_front = planner.read_scene([tokens[6:]], [index[6:]], GRID, egos)[0]
        empty = planner.scene_reader([torch.zeros(0, 64)], [egos[0].speed])[0]
        torch.testing.assert_close(no_front, empty)
        # and the plan follows what the reader saw
        seen, own = _plan(vla, front, index, egos[0]), _plan(vla, tokens, index, egos[0])
        assert not np.allclose(seen, own)
    assert facts.kind_logits.shape == (1, len(LEAD_KINDS))


def test_batched_training_forward_matches_plan() -> None:
    vla = _reader_vla()
    _speak(vla)
    gen = torch.Generator().manual_seed(5)
    tokens = torch.randn(12, 64, generator=gen)
    kept = [torch.arange(12), torch.tensor([1, 4, 7, 9])]
    egos = [_ego(6.0), restrict_ego(_ego(11.0), "minimal")]
    with torch.no_grad():
        out = vla.planner.forward_training(
            visual_tokens=[tokens, tokens[kept[1]]], kept_index=kept, grid_thw=GRID, egos=egos
        )
    assert out.facts is not None and out.facts.decision.shape == (2,)
    for b in range(2):
        one = _plan(vla, tokens[kept[b]], kept[b], egos[b])
        # plan() returns the training forward's plan projected forward (nn/forward_only.py)
        assert np.allclose(forward_only(out.waypoints[b].numpy()), one, atol=1e-4)


def test_fact_terms_count_only_labelled_keyframes() -> None:
    out = {
        "lead": torch.randn(3, len(LEAD_KINDS), requires_grad=True),
        "inverse_gap": torch.rand(3, requires_grad=True),
        "decision": torch.randn(3, requires_grad=True),
    }
    batch = {
        "lead": torch.tensor([1, -1, 0]),
        "inverse_gap": torch.tensor([0.5, math.nan, 0.0]),
        "decision": torch.tensor([-2.0, math.nan, math.nan]),
    }
    loss, metrics = fact_terms(out, batch)
    assert torch.isfinite(loss) and metrics["lead_acc"] in (0.0, 0.5, 1.0)
    loss.backward()
    assert out["lead"].grad[1].abs().sum() == 0 and out["lead"].grad[0].abs().sum() > 0
    assert out["decision"].grad[2] == 0 and out["decision"].grad[0] != 0
    nothing = {"lead": torch.full((3,), -1), "inverse_gap": torch.full((3,), math.nan)}
    nothing["decision"] = torch.full((3,), math.nan)
    loss, metrics = fact_terms(out, nothing)
    assert float(loss.detach()) == 0.0 and metrics == {} and loss.requires_grad


def _invoke(args: list[str]):
    app = typer.Typer()
    register(app)
    torch.set_num_threads(1)
    return CliRunner().invoke(app, args)


def _reader_args(bundle: Path, world: Path, out: Path) -> list[str]:
    args = ["train-planner", "--model", str(bundle), "--dataroot", str(world)]
    args += ["--version", VERSION, "--split", "train", "--val-split", "val"]
    return args + ["--out", str(out), "--device", "cpu", "--no-progress", "--seed", "1"]


def test_train_planner_teaches_the_reader_the_world(world: Path, tmp_path_factory) -> None:
    bundle = tiny_bundle(tmp_path_factory)
    out = tmp_path_factory.mktemp("reader")
    args = _reader_args(bundle, world, out)
    args += ["--scene-reader", "--reader-epochs", "20", "--reader-lr", "3e-3"]
    args += ["--epochs", "1", "--batch-size", "4", "--warmup-steps", "1"]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reader"]["steps"] > 0 and summary["full"]["steps"] > 0
    history = [json.loads(line) for line in (out / "run" / "reader" / "metrics.jsonl").open()]
    vals = [h for h in history if "val_loss" in h]
    assert vals[-1]["val_loss"] < vals[0]["val_loss"]  # the reader learned the labels
    trained = VLA.from_pretrained(out / "model")
    assert trained.config.scene_reader
    assert trained.planner.scene_reader.project.weight.abs().sum() > 0  # it now speaks


def test_more_worlds_teach_the_reader_on_their_keyframes_too(
    world: Path, tmp_path_factory
) -> None:
    bundle, other = tiny_bundle(tmp_path_factory), tiny_world(tmp_path_factory, seed=6)
    out = tmp_path_factory.mktemp("reader_worlds")
    args = _reader_args(bundle, world, out) + ["--scene-reader", "--reader-epochs", "2"]
    args += ["--reader-dataroot", str(other), "--epochs", "1", "--max-items", "4"]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    summary = json.loads((out / "summary.json").read_text())
    own = len(read_records(dataroot=world, version=VERSION, split="train", progress=False))
    more = len(read_records(dataroot=other, version=VERSION, progress=False))
    assert summary["reader"]["steps"] == 2 * math.ceil((own + more) / 32)  # both worlds, 2 epochs
    assert summary["full"]["steps"] == 1  # the all-token phase keeps the training world: 4 items
    # the other world is cached for its front camera alone: the reader reads nothing else
    grids = sorted(
        len(json.loads(f.read_text())["grid_thw"]) for f in (out / "work").rglob("cache.json")
    )
    assert grids == [1, len(CAMERA_NAMES), len(CAMERA_NAMES)]  # other; train and val


def test_a_reader_world_cached_with_every_camera_is_refused(
    world: Path, records, tmp_path_factory, tmp_path: Path
) -> None:
    from fastdrive_ros.data.world_labels import read_scene_labels
    from fastdrive_ros.train.loop import TrainConfig
    from fastdrive_ros.train.planner import train_planner
    from fastdrive_ros.train.token_cache import build_token_cache

    vla = VLA.from_pretrained(tiny_bundle(tmp_path_factory))
    vla.add_scene_reader()
    size = vla.config.image_size
    cache = build_token_cache(
        encoder=vla.vision, records=records[:2], image_size=size, folder=tmp_path
    )
    config = TrainConfig(epochs=1, batch_size=2)
    labels = read_scene_labels(world)
    with pytest.raises(ValueError, match="front camera alone"):
        train_planner(
            planner=vla.planner, train_cache=cache, train_records=records[:2], val_cache=None,
            val_records=[], out_dir=tmp_path / "run", config=config, labels=labels,
            reader_config=config, reader_worlds=[(cache, records[:2])], progress=False,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--reader-epochs", "2"], "give each world once"), ([], "give --reader-epochs")],
)
def test_a_reader_world_twice_or_without_a_reader_phase_is_refused(
    world: Path, tmp_path_factory, extra: list[str], message: str
) -> None:
    out = tmp_path_factory.mktemp("reader_refused")
    args = _reader_args(tiny_bundle(tmp_path_factory), world, out) + ["--scene-reader"]
    result = _invoke(args + ["--reader-dataroot", str(world), *extra])
    assert result.exit_code == 2 and message in result.output
    assert not (out / "summary.json").exists()
