"""The decision read from pruned front tokens: kept cells, one reader, the oracle gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_dense_probe import GRID, _maps
from train_tiny import decision_world, tiny_bundle, tiny_world

from fastdrive_ros.nn.decision_reader import DecisionReader
from fastdrive_ros.nn.registry import make_selector
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.decision_probe import encoder_output, front_tokens
from fastdrive_ros.train.dense_probe import World, corridor_features
from fastdrive_ros.train.pruned_reading import (
    EncoderOutput,
    _check_selectors,
    above_oracle,
    between_oracles,
    kept_cells,
    main,
    pruned_reading,
    render_tables,
)
from fastdrive_ros.train.records import read_records

CELLS = GRID[0] * GRID[1]
VEHICLE_CELL = 6 * GRID[1] + 9


def _front(fg_share: np.ndarray) -> EncoderOutput:
    count = len(fg_share)
    tokens = np.random.default_rng(0).normal(size=(count, CELLS, 8)).astype(np.float32)
    attention = np.random.default_rng(1).random((count, CELLS)).astype(np.float32)
    grid = torch.tensor([[1, 2 * GRID[0], 2 * GRID[1]]])
    return EncoderOutput(tokens, fg_share, attention, grid, slice(0, CELLS))


def test_masked_maps_hold_nothing_where_tokens_were_dropped() -> None:
    maps = _maps([[("vehicle", 6, 9, 0.5)], [("vehicle", 6, 9, 0.5)]])
    kept = np.ones((2, CELLS), dtype=bool)
    kept[1, VEHICLE_CELL] = False
    seen = maps.masked(kept)
    assert seen.classes[0].sum() == pytest.approx(CELLS)  # all kept: unchanged
    assert not seen.classes[1, VEHICLE_CELL].any() and not seen.depth[1, VEHICLE_CELL].any()
    assert corridor_features(seen)[:, 0].tolist() == pytest.approx([0.5, 0.0])  # car unseen
    with pytest.raises(ValueError, match="kept must be"):
        maps.masked(kept[:, :10])


def test_kept_cells_are_the_selector_choice_at_the_ratio() -> None:
    share = np.random.default_rng(2).random((3, CELLS))
    front = _front(share)
    oracle = kept_cells(make_selector("oracle_fg"), front, 0.75)
    anti = kept_cells(make_selector("anti_oracle"), front, 0.75)
    assert (oracle.sum(1) == CELLS // 4).all() and (anti.sum(1) == CELLS // 4).all()
    for row in range(3):  # the highest shares, the lowest shares
        assert share[row, oracle[row]].min() >= share[row, ~oracle[row]].max()
        assert share[row, anti[row]].max() <= share[row, ~anti[row]].min()
    random = make_selector("random", seed=3)
    assert (kept_cells(random, front, 0.5) == kept_cells(random, front, 0.5)).all()  # reset


def test_with_all_cameras_the_selector_sets_the_front_camera_budget() -> None:
    share = np.zeros((2, 2 * CELLS))
    share[0, CELLS:] = 1.0  # keyframe 0: all foreground on the second camera
    share[1, :CELLS] = 1.0  # keyframe 1: all on the front camera
    grid = torch.tensor([[1, 2 * GRID[0], 2 * GRID[1]]] * 2)
    tokens = np.zeros((2, 2 * CELLS, 8), dtype=np.float32)
    encoded = EncoderOutput(tokens, share, share, grid, slice(0, CELLS))
    kept = kept_cells(make_selector("oracle_fg"), encoded, 0.5)  # K = 180 of 360
    assert kept.shape == (2, CELLS)
    assert kept[0].sum() == 0 and kept[1].all()


def test_encoder_output_front_slice_is_the_front_camera(
    world, tmp_path_factory: pytest.TempPathFactory
) -> None:
    records = read_records(dataroot=world, version="v1.0-synth", progress=False)[:3]
    bundle = tiny_bundle(tmp_path_factory)
    front, front_attention = encoder_output(bundle, records)
    every, every_attention = encoder_output(bundle, records, all_cameras=True)
    cameras = len(records[0].cameras)
    n = front.shape[1]
    assert every.shape == (3, cameras * n, front.shape[2]) and every_attention.shape == (
        3,
        cameras * n,
    )
    at = records[0].cameras.index("CAM_FRONT") * n
    np.testing.assert_allclose(every[:, at : at + n], front, atol=1e-5)
    np.testing.assert_allclose(front_tokens(bundle, records), front, atol=1e-5)


def test_repeated_world_keeps_each_copy_own_predecessors() -> None:
    records, labels = decision_world(0, future_from="decision", n=24)
    chain = {r.token: records[i - 1].token for i, r in enumerate(records) if i % 12}
    world = World.of(records, labels, chain)
    twice = world.repeated(2)
    assert len(twice.decision) == 48 and twice.problem.target.shape == (48, 12)
    assert (twice.previous[24:] == world.previous + 24).all()
    assert (twice.scenes[24:] == world.scenes).all()


def _world(seed: int, *, signal: bool = True) -> tuple[World, object, np.ndarray]:
    """A vehicle ahead, the one foreground cell, whose nearness tells the decision.

    Without `signal` its nearness is a number the decision does not depend on.
    """
    records, labels = decision_world(seed, future_from="decision")
    world = World.of(records, labels, {})
    cue = (
        world.decision if signal else np.random.default_rng(seed + 7).uniform(-3, 1, len(records))
    )
    inverse = 0.05 + 0.2 * (1 - cue)
    maps = _maps([[("vehicle", 6, 9, float(v))] for v in inverse])
    share = np.random.default_rng(seed).uniform(0, 0.5, (len(records), CELLS))
    share[:, VEHICLE_CELL] = 1.0
    return world, maps, share


def _oracle_rows(signal: bool):
    """One reader on the train world, oracle / anti-oracle / random at 75 % on the held one."""
    train, train_maps, train_share = _world(0, signal=signal)
    held, held_maps, held_share = _world(1, signal=signal)
    ratio = 0.75
    oracle, anti = make_selector("oracle_fg"), make_selector("anti_oracle")
    views = [np.ones((len(train.decision), CELLS), dtype=bool)] + [
        kept_cells(s, _front(train_share), r) for s in (oracle, anti) for r in (0.25, 0.75)
    ]
    front = _front(held_share)
    kept = {
        "held": {
            ("oracle_fg", ratio): kept_cells(oracle, front, ratio),
            ("anti_oracle", ratio): kept_cells(anti, front, ratio),
            ("random", ratio): kept_cells(make_selector("random", seed=0), front, ratio),
        }
    }
    rows = pruned_reading((train, train_maps, views), {"held": (held, held_maps)}, kept, trees=60)
    return rows, above_oracle(rows, {"held": held.scenes}), ratio


def test_the_reading_tells_oracle_from_anti_oracle() -> None:
    rows, gaps, ratio = _oracle_rows(signal=True)
    assert rows["oracle_fg", ratio]["held"]["corr"] > 0.9  # the car was kept: read
    assert abs(rows["anti_oracle", ratio]["held"]["corr"]) < 0.3  # dropped: nothing to read
    gap = gaps["anti_oracle", ratio, "held"]  # the oracle gap
    assert gap.low > 0 and gap.relative > 50
    assert gaps["random", ratio, "held"].low > 0  # random is told apart from the oracle too
    assert ("oracle_fg", ratio, "held") not in gaps
    places = between_oracles(rows)
    assert places["oracle_fg", ratio] == 0.0 and places["anti_oracle", ratio] == 1.0
    assert 0.3 < places["random", ratio] < 1.0  # a quarter of the time it keeps the car
    table = render_tables(rows, gaps, places)
    assert "| oracle_fg | " in table and "| anti_oracle | held | +" in table


def test_no_gap_where_the_kept_cells_tell_nothing() -> None:
    """The benchmark can fail: a car whose nearness says nothing gives no oracle gap."""
    _, gaps, ratio = _oracle_rows(signal=False)
    gap = gaps["anti_oracle", ratio, "held"]
    assert gap.low < 0 < gap.high or abs(gap.relative) < 5


def test_llm_stage_pruners_and_whole_frame_probes_are_refused() -> None:
    with pytest.raises(ValueError, match="inside the LLM"):
        _check_selectors(["fastv"])
    with pytest.raises(ValueError, match="not a pruner"):
        _check_selectors(["shuffled"])
    _check_selectors(["reconpruner", "vispruner", "oracle_fg"])


@pytest.mark.parametrize("cameras", ["front", "all"])
def test_the_command_prunes_a_tower_tokens_on_two_worlds(
    cameras: str,
    world,
    tmp_path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    held = tiny_world(tmp_path_factory, seed=6)
    bundle = tiny_bundle(tmp_path_factory)
    saved = tmp_path / "reader" / "decision_reader.safetensors"
    if cameras == "front":
        out = ["--save-reader", str(saved)]
    else:  # into a bundle whose planner has a scene reader for the decision to feed
        tower = VLA.from_pretrained(bundle)
        tower.add_scene_reader()
        bundle = tower.save_pretrained(tmp_path / "tower")
        out = ["--bundle-out", str(tmp_path / "reading"), "--pace"]
    main(
        [
            *out,
            "--tower",
            str(bundle),
            str(world),
            str(held),
            "--ratios",
            "0.5",
            "--trees",
            "20",
            "--threads",
            "1",
            "--cameras",
            cameras,
        ]
    )
    table = capsys.readouterr().out
    for name in ("none", "oracle_fg", "anti_oracle", "reconpruner", "vispruner", "random"):
        assert f"| {name} | " in table
    assert f"| anti_oracle | {held} | " in table and " % [" in table
    # the saved reading, run from the tower's tokens as the node would, reads what was measured
    measured = f"{_none_corr(table):.2f}"
    assert f"all tokens: {measured} (measured above: {measured})" in table
    if cameras == "front":
        assert DecisionReader.load(saved).meta["train"] == str(world)
    else:
        reading = VLA.from_pretrained(tmp_path / "reading")
        assert reading.config.decision_reader
        reader = reading.planner.decision_reader
        assert reader.meta["tower"] == str(bundle)
        # with --pace the reading also reads the full-status pace, checked on the held-out world
        assert reader.pace is not None and set(reader.meta["pace_corr"]) == {str(held)}
        assert "its pace corr: " in table


def _none_corr(table: str) -> float:
    """The decision corr of the unpruned row of `render_tables`' first table (one world)."""
    row = next(line for line in table.splitlines() if line.startswith("| none | "))
    return float(row.split("(")[1].split(")")[0])


def test_a_bundle_without_a_scene_reader_is_refused_before_any_encoding(
    tmp_path_factory: pytest.TempPathFactory, tmp_path
) -> None:
    # the reading feeds the planner's scene reader: without one there is nothing to feed, and
    # the refusal comes before the worlds are read (they do not even exist here)
    bundle = tiny_bundle(tmp_path_factory)
    argv = ["--tower", str(bundle), str(tmp_path / "no-world"), str(tmp_path / "none-either")]
    with pytest.raises(SystemExit, match="no scene reader.*--scene-reader"):
        main([*argv, "--bundle-out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
