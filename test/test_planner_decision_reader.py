"""The decision reader inside the planner: frame memory, what it feeds, and the bundle's file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_planner_scene_reader import GRID, _ego, _plan, _reader_vla, _speak

from fastdrive_ros.nn.corridor import corridor_features
from fastdrive_ros.nn.decision_reader import CellHead, DecisionReader
from fastdrive_ros.nn.forward_only import forward_only
from fastdrive_ros.nn.frame_memory import FrameMemory
from fastdrive_ros.nn.vla import DECISION_READER_FILE, VLA
from fastdrive_ros.train.boosted import boosted_fit, tree_ensemble_of
from fastdrive_ros.train.dense_probe import CORRIDOR
from fastdrive_ros.train.images import NUM_CLASSES

WIDTH = 64
FRONT = (2, 3)  # tiny_config: 4x6 patches, merged 2x2, per camera


def test_frame_memory_hands_the_frame_half_a_second_before() -> None:
    memory = FrameMemory()
    first = memory.at(10.0, "scene-a")
    assert first.previous is None  # nothing yet: no motion
    first.keep(torch.tensor([1.0]))
    memory.at(10.2, "scene-a").keep(torch.tensor([2.0]))
    assert memory.at(10.5, "scene-a").previous.tolist() == [1.0]  # closest to 10.0
    assert memory.at(10.65, "scene-a").previous.tolist() == [2.0]  # closest to 10.15: 10.2
    assert memory.at(11.5, "scene-a").previous is None  # nothing near 11.0: a gap
    memory.at(12.0, "scene-a").keep(torch.tensor([3.0]))
    assert len(memory) == 3  # 10.0 and 10.2 are older than the horizon (2 s)
    assert memory.at(12.5, "scene-b").previous is None  # another scene starts afresh
    assert len(memory) == 0
    memory.at(20.0, "scene-b").keep(torch.tensor([4.0]))
    assert memory.at(19.0, "scene-b").previous is None and len(memory) == 0  # replay looped
    with pytest.raises(ValueError, match="tolerance_s < lag_s"):
        FrameMemory(lag_s=0.1, tolerance_s=0.2)


def _decision_reader(seed: int = 0) -> DecisionReader:
    """A reader on the tiny planner's front grid whose trees read the motion of a corridor fact.

    Fitted on corridors of random tokens (the scale the reader will see): the decision is the
    change of the nearest vehicle's share in the narrow band since the frame before.
    """
    torch.manual_seed(seed)
    cells = CellHead(WIDTH, NUM_CLASSES).eval()
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randn(2, 400, FRONT[0] * FRONT[1], WIDTH, generator=gen)
    with torch.no_grad():
        corridors = []
        for frame in tokens:
            logits, depth, colours = cells(frame)
            maps = (logits.softmax(-1), depth, colours)
            corridors.append(corridor_features(*maps, FRONT, CORRIDOR).double().numpy())
    now, before = corridors
    ego = np.tile([6.0, 3.6, 0.0, 0.0], (400, 1))
    x = np.hstack([ego, now, now - before])
    y = 100 * (now - before)[:, 2]
    trees = tree_ensemble_of(boosted_fit(x, y, trees=60, seed=0))
    return DecisionReader(cells=cells, layout=CORRIDOR, grid=FRONT, trees=trees).eval()


def _paced_reader(seed: int = 0, ahead: float = 1.0) -> DecisionReader:
    """`_decision_reader` with pace trees that read the measured acceleration + `ahead`."""
    reader = _decision_reader(seed)
    rng = np.random.default_rng(seed)
    features = reader.trees.features
    x = np.hstack([rng.normal(0, 1, (400, features)), rng.uniform(-2, 1, (400, 3))])
    pace = tree_ensemble_of(boosted_fit(x, x[:, features] + ahead, trees=60, seed=0))
    return DecisionReader(cells=reader.cells, layout=CORRIDOR, grid=FRONT, trees=reader.trees,
                          pace=pace).eval()  # fmt: skip


def _reading_vla() -> VLA:
    vla = _reader_vla()
    _speak(vla)
    vla.add_decision_reader(_decision_reader())
    return vla


def test_the_planner_reads_the_decision_with_its_reader_on_the_kept_front_tokens() -> None:
    vla = _reading_vla()
    planner, reader = vla.planner, vla.planner.decision_reader
    gen = torch.Generator().manual_seed(2)
    tokens, index = torch.randn(12, WIDTH, generator=gen), torch.tensor([0, 2, 3, 7, 9])
    with torch.no_grad():
        _, facts = planner.read_scene([tokens[index]], [index], GRID, [_ego(8.0)])
        kept = torch.tensor([[True, False, True, True, False, False]])
        grid = torch.zeros(1, 6, WIDTH)
        grid[0, [0, 2, 3]] = tokens[[0, 2, 3]]
        ego = torch.tensor([[8.0, 6.4, 0.0, 0.0]])  # speed, speed^2 / 10, left, right
        decision, corridor = reader(grid, kept, ego)
    assert facts.decision.item() == pytest.approx(decision.item(), abs=1e-5)
    torch.testing.assert_close(facts.corridor, corridor)


def test_the_planner_remembers_the_frame_before_and_reads_its_motion() -> None:
    vla = _reading_vla()
    gen = torch.Generator().manual_seed(4)
    before, now = torch.randn(12, WIDTH, generator=gen), torch.randn(12, WIDTH, generator=gen)
    index = torch.arange(12)
    memory = FrameMemory()

    def plan(tokens: torch.Tensor, stamp_s: float, slot=True) -> np.ndarray:
        out = vla.planner.plan(
            kept_tokens=tokens,
            kept_index=index,
            grid_thw=GRID,
            ego=_ego(),
            memory=memory.at(stamp_s, "s") if slot else None,
        )
        return out.waypoints

    alone = plan(now, 0.0, slot=False)  # no memory: no motion
    plan(before, 10.0)
    assert len(memory) == 1  # the planner kept the frame's corridor
    moved = plan(now, 10.5)  # compared with the frame 0.5 s before
    assert not np.allclose(moved, alone)
    again = plan(now, 10.6)  # 0.6 s after `before`, 0.1 s after `now`: the closest is `before`
    assert np.allclose(again, moved, atol=1e-5)


def test_a_bundle_keeps_its_decision_reader(tmp_path: Path) -> None:
    vla = _reading_vla()
    gen = torch.Generator().manual_seed(6)
    tokens, index = torch.randn(12, WIDTH, generator=gen), torch.arange(12)
    planned = _plan(vla, tokens, index, _ego())
    folder = vla.save_pretrained(tmp_path / "bundle")
    assert (folder / DECISION_READER_FILE).is_file()
    assert "decision_reader.safetensors" in (folder / "SHA256SUMS").read_text()
    loaded = VLA.from_pretrained(folder).eval()
    assert loaded.config.decision_reader and loaded.planner.decision_reader is not None
    assert np.allclose(_plan(loaded, tokens, index, _ego()), planned, atol=1e-5)
    trees = loaded.planner.decision_reader.trees
    assert trees.threshold.dtype == torch.float64  # VLA.to(dtype=float32) left the splits exact
    loaded.to(torch.bfloat16)
    assert trees.threshold.dtype == trees.value.dtype == torch.float64
    assert trees.feature.dtype == torch.int64
    (folder / DECISION_READER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="--save-reader"):
        VLA.from_pretrained(folder)


def test_a_decision_reader_needs_a_scene_reader_and_the_planner_width() -> None:
    from fastdrive_ros.nn.configs import tiny_config

    plain = VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=3)
    with pytest.raises(ValueError, match="has none"):
        plain.add_decision_reader(_decision_reader())
    narrow = _decision_reader()
    narrow.cells = CellHead(32, NUM_CLASSES)
    with pytest.raises(ValueError, match="32-wide tokens"):
        _reader_vla().add_decision_reader(narrow)


def test_training_reads_the_keyframe_before_as_planning_with_memory_does() -> None:
    vla = _reading_vla()
    gen = torch.Generator().manual_seed(8)
    before, now = torch.randn(12, WIDTH, generator=gen), torch.randn(12, WIDTH, generator=gen)
    kept = torch.tensor([0, 1, 3, 4, 8, 11])
    memory = FrameMemory()
    planner = vla.planner
    for tokens, stamp in ((before, 0.0), (now, 0.5)):
        planned = planner.plan(
            kept_tokens=tokens[kept],
            kept_index=kept,
            grid_thw=GRID,
            ego=_ego(),
            memory=memory.at(stamp, "s"),
        ).waypoints
    with torch.no_grad():
        batch = planner.forward_training(
            visual_tokens=[now[kept], now[kept]],
            kept_index=[kept, kept],
            grid_thw=GRID,
            egos=[_ego(), _ego()],
            previous_tokens=[before[kept], None],
            previous_index=[kept, None],
        )
    # plan() returns the training forward's plan projected forward (nn/forward_only.py)
    assert np.allclose(forward_only(batch.waypoints[0].numpy()), planned, atol=1e-4)
    assert not np.allclose(forward_only(batch.waypoints[1].numpy()), planned, atol=1e-4)


def test_a_planner_with_a_decision_reader_trains_on_keyframe_pairs(tmp_path: Path) -> None:
    from fastdrive_ros.train.loop import TrainConfig
    from fastdrive_ros.train.planner import train_planner

    with pytest.raises(ValueError, match="pass chain"):
        train_planner(
            planner=_reading_vla().planner,
            train_cache=type(
                "C", (), {"spec": type("S", (), {"width": WIDTH}), "grid_thw": GRID}
            )(),
            train_records=[],
            val_cache=None,
            val_records=[],
            out_dir=tmp_path,
            config=TrainConfig(epochs=1, batch_size=1),
        )


def test_the_planner_bench_times_the_decision_reader(tmp_path: Path, capsys) -> None:
    from fastdrive_ros.nn.bench_planner import bench

    folder = _reading_vla().save_pretrained(tmp_path / "bundle")
    bench(model=folder, threads=1, repeats=1, decode_tokens=2)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("decision reader"))
    assert float(line.split()[2]) > 0  # median ms
