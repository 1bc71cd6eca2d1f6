"""The dense probe: corridor facts from cell maps, a per-cell head, the decision read from them."""

from __future__ import annotations

import numpy as np
import pytest
from train_tiny import IMAGE_SIZE, decision_world, tiny_bundle, tiny_world

from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.eval.bootstrap import l2_avg
from fastdrive_ros.train.dense_probe import (
    CellMaps,
    World,
    corridor_features,
    dense_probe,
    fit_cell_head,
    main,
    read_cell_maps,
    render_table,
    score_reading,
    with_motion,
    world_cell_maps,
)
from fastdrive_ros.train.images import NUM_CLASSES
from fastdrive_ros.train.records import previous_rows, read_records
from fastdrive_ros.train.token_probe import MinimalProblem

GRID = (10, 18)
ROAD = CLASS_ID["road"]


def _maps(objects: list[list[tuple[str, int, int, float]]], colour=(0.5, 0.5, 0.5)) -> CellMaps:
    """Road everywhere; per keyframe (class, row, col, inverse depth) cells; RGB per cell."""
    count, cells = len(objects), GRID[0] * GRID[1]
    classes = np.zeros((count, cells, NUM_CLASSES))
    classes[..., ROAD] = 1.0
    depth = np.full((count, cells, 2), 0.05)
    colours = np.tile(np.asarray(colour, float), (count, cells, 4))
    for k, cells_k in enumerate(objects):
        for name, row, col, inverse in cells_k:
            i = row * GRID[1] + col
            classes[k, i] = 0.0
            classes[k, i, CLASS_ID[name]] = 1.0
            depth[k, i] = inverse
    return CellMaps(classes, depth, colours, GRID)


def test_corridor_features_see_what_stands_in_the_ego_lane() -> None:
    features = corridor_features(
        _maps([[("vehicle", 6, 9, 0.4)], [("vehicle", 4, 9, 0.1)], [("vehicle", 6, 1, 0.4)], []])
    )
    vehicle_nearest = features[:, 0]  # narrow band, vehicle group, largest closeness
    assert vehicle_nearest.tolist() == pytest.approx([0.4, 0.1, 0.0, 0.0])
    human_nearest = features[:, 3]
    assert not human_nearest.any()
    obstacle = features[:, -1]  # the nearest non-road cell in the narrow band
    assert obstacle.tolist() == pytest.approx([0.4, 0.1, 0.0, 0.0])


def test_corridor_features_tell_a_red_light_from_a_green_one() -> None:
    light = [[("traffic_light", 1, 9, 0.1)]]
    red = corridor_features(_maps(light, colour=(0.9, 0.1, 0.1)))[0]
    green = corridor_features(_maps(light, colour=(0.1, 0.9, 0.1)))[0]
    red_max, green_max = -5, -3  # light features: red max, red sum, green max, green sum, depth
    assert red[red_max] > 0.5 and red[green_max] == 0.0
    assert green[green_max] > 0.5 and green[red_max] == 0.0
    assert red[-2] == green[-2] == pytest.approx(0.1)  # the light's inverse depth


def test_motion_is_the_change_since_the_keyframe_before() -> None:
    records, _ = decision_world(0, future_from="decision", n=6)
    chain = {records[1].token: records[0].token, records[2].token: records[1].token}
    previous = previous_rows(records, chain)
    assert previous.tolist() == [0, 0, 1, 3, 4, 5]  # without a predecessor: its own
    features = np.arange(12.0).reshape(6, 2)
    moved = with_motion(features, previous)
    assert moved[:, :2].tolist() == features.tolist()
    assert moved[:, 2:].tolist() == [[0, 0], [2, 2], [2, 2], [0, 0], [0, 0], [0, 0]]


def test_the_cell_head_reads_what_the_tokens_encode() -> None:
    rng = np.random.default_rng(0)

    def tokens_and_maps(count: int):
        kinds = rng.choice([ROAD, CLASS_ID["vehicle"], CLASS_ID["sky"]], size=(count, 180))
        inverse = rng.uniform(0, 1, size=(count, 180))
        classes = np.eye(NUM_CLASSES)[kinds]
        tokens = np.concatenate(
            [classes, inverse[..., None], rng.normal(0, 0.1, size=(count, 180, 7))], -1
        )
        depth = np.stack([inverse, inverse], -1)
        return tokens, CellMaps(classes, depth, np.full((count, 180, 12), 0.5), GRID)

    train_tokens, train_maps = tokens_and_maps(30)
    head = fit_cell_head(train_tokens, train_maps, epochs=4)
    test_tokens, truth = tokens_and_maps(5)
    read = read_cell_maps(head, test_tokens, GRID)
    assert (read.classes.argmax(-1) == truth.classes.argmax(-1)).mean() > 0.95
    assert np.corrcoef(read.depth[..., 1].ravel(), truth.depth[..., 1].ravel())[0, 1] > 0.95
    assert read.classes.sum(-1) == pytest.approx(np.ones((5, 180)), abs=1e-5)


def _world(seed: int, *, signal: bool) -> tuple[World, CellMaps]:
    """decision_world with a vehicle ahead whose nearness says the decision (with `signal`)."""
    records, labels = decision_world(seed, future_from="decision")
    world = World.of(records, labels, {})
    rng = np.random.default_rng(seed + 10)
    cue = -world.decision if signal else rng.uniform(-1, 3, len(records))
    inverse = 0.05 + 0.2 * (cue + 1)  # decisions -3..1 -> 0.05..0.85
    maps = _maps([[("vehicle", 6, 9, float(v))] for v in inverse])
    return world, maps


def test_a_decision_the_cells_show_is_read_and_noise_buys_nothing() -> None:
    for signal in (True, False):
        (train, train_maps), (held, held_maps) = _world(0, signal=signal), _world(1, signal=signal)
        x = {
            name: np.hstack([w.problem.ego, corridor_features(m)])
            for name, (w, m) in {"t": (train, train_maps), "h": (held, held_maps)}.items()
        }
        figures = score_reading(x["t"], train, {"held": (x["h"], held)}, trees=80)["held"]
        if signal:
            assert figures["corr"] > 0.9
            assert figures["own"] < 0.5 * figures["ego"] and figures["shuffled"] > figures["own"]
            assert figures["gain"].low > 0 and figures["content"].low > 0  # scene bootstrap
            assert figures["gain"].estimate == pytest.approx(figures["ego"] - figures["own"])
        else:
            assert abs(figures["corr"]) < 0.3 and figures["own"] > 0.9 * figures["ego"]
            assert figures["gain"].relative < 10


def test_dense_probe_rows_cover_the_labels_and_each_source() -> None:
    (train, train_maps), (held, held_maps) = _world(0, signal=True), _world(1, signal=True)
    rows = dense_probe(
        {"train": train, "held": held},
        {"world": {"train": train_maps, "held": held_maps}},
        "train",
        trees=40,
    )
    assert list(rows) == [
        "labels: kind + gap",
        "labels: + closing speed",
        "world cells",
        "world cells + motion",
    ]
    assert all(list(r) == ["held"] for r in rows.values())
    assert rows["world cells"]["held"]["corr"] > 0.9
    table = render_table(rows)
    assert "| world cells + motion | held |" in table and " % [" in table


def test_step_errors_give_the_probe_l2() -> None:
    records, _ = decision_world(0, future_from="decision", n=24)
    problem = MinimalProblem.of(records)
    residual = np.random.default_rng(0).normal(size=problem.target.shape)
    problem.valid[3, 4:] = 0  # a future cut short: its last steps do not count
    steps = problem.step_errors(residual)
    assert np.isnan(steps[3, 4:]).all() and not np.isnan(steps[3, :4]).any()
    assert l2_avg(steps) == pytest.approx(problem.l2_avg(residual))


def test_world_cell_maps_are_the_world_exact_shares(world) -> None:
    records = read_records(dataroot=world, version="v1.0-synth", progress=False)[:3]
    size = IMAGE_SIZE
    maps = world_cell_maps(records, size, 28)
    assert maps.grid == (size[0] // 28, size[1] // 28)
    assert maps.classes.shape == (3, maps.grid[0] * maps.grid[1], NUM_CLASSES)
    assert maps.classes.sum(-1) == pytest.approx(np.ones(maps.classes.shape[:2]))
    assert 0 <= maps.depth.min() and maps.depth.max() <= 1
    assert (maps.depth[..., 1] >= maps.depth[..., 0]).all()  # nearest >= mean inverse depth
    imageless, _ = decision_world(0, future_from="decision", n=1)
    with pytest.raises(ValueError, match="class map"):
        world_cell_maps(imageless, size, 28)


def test_the_command_reads_a_tower_on_two_worlds(
    world, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    held = tiny_world(tmp_path_factory, seed=6)
    main(["--tower", str(tiny_bundle(tmp_path_factory)), str(world), str(held), "--threads", "1"])
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith(f"| tokens cells | {held} |")]
    assert len(rows) == 1 and table.count(f" | {held} | ") == 6  # labels, world, tokens (x2)
