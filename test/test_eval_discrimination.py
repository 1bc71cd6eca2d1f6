"""Event labels on hand-made futures, the scene bootstrap, and the discrimination verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fastdrive_ros.eval.bootstrap import l2_avg, paired_l2_difference, scene_weights
from fastdrive_ros.eval.discrimination import by_event, discrimination
from fastdrive_ros.eval.events import WorldRecords, braking_cause, label_event
from fastdrive_ros.eval.metrics import GroundTruth, MetricAccumulator

T = 0.5 * np.arange(1, 7)


def _label(speed: float, xs, ys=None, yaw=None, valid=None, leads=None) -> str:
    xy = np.stack([np.asarray(xs, float), np.zeros(6) if ys is None else np.asarray(ys)], axis=1)
    return label_event(
        speed=speed,
        future_xy=xy,
        future_yaw=np.zeros(6) if yaw is None else np.asarray(yaw),
        future_valid=np.ones(6, bool) if valid is None else np.asarray(valid),
        leads=leads,
    )


def test_event_labels_on_hand_made_futures() -> None:
    assert _label(10.0, 10.0 * T) == "steady"
    assert _label(0.0, np.zeros(6)) == "stopped"
    assert _label(0.2, [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]) == "stopped"
    # from 0 to 3 m/s at 1 m/s^2: x = t^2 / 2
    assert _label(0.0, 0.5 * T**2) == "starting"
    # 10 m/s braking at 2 m/s^2: x = 10 t - t^2, speed 4 m/s at 3 s
    braking = 10 * T - T**2
    assert _label(10.0, braking) == "braking_other"
    leads = [("vehicle", -0.2), ("red_light", -2.0), ("none", -2.5), ("vehicle", -0.5)]
    assert _label(10.0, braking, leads=leads) == "braking_red_light"
    assert _label(10.0, braking, leads=[("zebra", -1.0)]) == "braking_pedestrian"
    assert _label(10.0, braking, leads=[("static", -1.0)]) == "braking_vehicle"
    assert _label(10.0, braking, leads=[("cyclist", -1.0)]) == "braking_cyclist"
    # a 90-degree turn at 6 m/s: heading changes by 0.5 rad/s
    yaw = 0.5 * T
    xy = np.stack([12 * np.sin(yaw), 12 * (1 - np.cos(yaw))], axis=1)
    assert _label(6.0, xy[:, 0], xy[:, 1], yaw=yaw) == "turning"
    assert _label(6.0, xy[:, 0], xy[:, 1], yaw=0.1 * T) == "steady"  # 17 degrees: not a turn
    # a gentle slow-down (1 m/s lost) is not braking
    assert _label(10.0, 10 * T - T**2 / 6) == "steady"
    # only the valid steps count: the slow tail beyond the scene's end is ignored
    tail = np.concatenate([10 * T[:3], [0, 0, 0]])
    assert _label(10.0, tail, valid=[True, True, True, False, False, False]) == "steady"


def test_braking_cause_prefers_the_hardest_deceleration_with_a_record() -> None:
    assert braking_cause(None) == "other"
    assert braking_cause([("none", -3.0)]) == "other"
    assert braking_cause([("pedestrian", -0.5), ("vehicle", -1.5)]) == "vehicle"
    assert braking_cause([("yield", -1.0)]) == "vehicle"
    assert braking_cause([("something_new", -1.0)]) == "other"


def test_world_records_window_covers_three_seconds(tmp_path: Path) -> None:
    folder = tmp_path / "synth" / "scenes"
    folder.mkdir(parents=True)
    frames = [
        {"sample_token": f"t{i}", "lead": "none" if i < 8 else "red_light", "acceleration": -i}
        for i in range(10)
    ]
    (folder / "scene-0000.json").write_text(json.dumps({"keyframes": frames}))
    world = WorldRecords.load(tmp_path)
    assert len(world) == 10
    assert world.leads("t0") == [("none", -float(i)) for i in range(7)]  # this + 6 = 3 s
    # t8 (the first red light) is 3.5 s after t1, 3 s after t2
    assert braking_cause(world.leads("t1")) == "other"
    assert braking_cause(world.leads("t2")) == "red_light"
    assert world.leads("unknown") is None
    assert len(world.leads("t9")) == 1
    assert WorldRecords.load(tmp_path / "nothing").leads("t0") is None


def test_l2_avg_matches_the_metric_accumulator() -> None:
    rng = np.random.default_rng(0)
    acc = MetricAccumulator()
    rows = []
    for i in range(5):
        future = np.cumsum(rng.uniform(0, 5, (6, 2)), axis=0)
        valid = np.ones(6, bool)
        valid[6 - i % 3 :] = False
        truth = GroundTruth(future_xy=future, future_valid=valid, agent_boxes=[[]] * 6)
        outcome = truth.score(future + rng.normal(0, 1, (6, 2)))
        acc.add(outcome)
        rows.append(outcome.l2)
    assert l2_avg(np.array(rows)) == pytest.approx(acc.summary().get("l2", "avg"))
    # weights act like repeating a sample
    doubled = np.array(rows + [rows[0]])
    assert l2_avg(np.array(rows), np.array([2, 1, 1, 1, 1])) == pytest.approx(l2_avg(doubled))


def test_scene_weights_resample_whole_scenes() -> None:
    scenes = ["a", "a", "a", "b", "c", "c"]
    weights = scene_weights(scenes, 200, seed=1)
    assert weights.shape == (200, 6)
    # keyframes of one scene always carry the same weight; each draw picks 3 scenes in all
    assert np.all(weights[:, 0] == weights[:, 1]) and np.all(weights[:, 1] == weights[:, 2])
    assert np.all(weights[:, 4] == weights[:, 5])
    assert np.all(weights[:, [0, 3, 4]].sum(axis=1) == 3)
    assert np.array_equal(weights, scene_weights(scenes, 200, seed=1))


def _rows(values: list[float]) -> np.ndarray:
    return np.repeat(np.asarray(values, float)[:, None], 6, axis=1)


def test_bootstrap_interval_on_a_hand_made_case() -> None:
    scenes = ["a", "a", "b", "b", "c", "c", "d", "d"]
    better = _rows([1.0] * 8)
    # every scene 0.5 m worse: the interval collapses on 0.5 m (50 %)
    worse = _rows([1.5] * 8)
    out = paired_l2_difference(worse, better, scenes, draws=300)
    assert (out.estimate, out.low, out.high) == pytest.approx((0.5, 0.5, 0.5))
    assert out.relative == pytest.approx(50.0) and out.excludes_zero
    assert (out.samples, out.scenes) == (8, 4)
    # one scene +2 m, three scenes 0: mean +0.5 m; a resample without scene a gives 0 and one
    # of only scene a gives +2, so the interval spans [0, 2] and includes 0
    worse = _rows([3.0, 3.0] + [1.0] * 6)
    out = paired_l2_difference(worse, better, scenes, draws=2000, seed=3)
    assert out.estimate == pytest.approx(0.5)
    assert out.low == pytest.approx(0.0) and 1.0 <= out.high <= 2.0
    assert not out.excludes_zero
    # the same data as if keyframes were independent (each its own scene) gives a narrower one
    narrow = paired_l2_difference(worse, better, [str(i) for i in range(8)], draws=2000, seed=3)
    assert narrow.high - narrow.low < out.high - out.low
    # a subset keeps its own size and still resamples scenes
    sub = paired_l2_difference(worse, better, scenes, subset=np.arange(8) < 2, draws=200)
    assert (sub.estimate, sub.samples, sub.scenes) == (pytest.approx(2.0), 2, 1)
    with pytest.raises(ValueError, match="no keyframe"):
        paired_l2_difference(worse, better, scenes, subset=np.zeros(8, bool))


def test_discrimination_and_breakdown() -> None:
    scenes = [s for s in "abcdef" for _ in range(3)]
    events = ["steady", "braking_red_light", "starting"] * 6
    own = _rows([1.0] * 18)
    scores = {
        "none@0": own,
        "shuffled@0": _rows([1.2] * 18),
        "no_images@0": _rows([1.1] * 18),
        "oracle_fg@0.75": own,
        "anti_oracle@0.75": _rows([1.0] * 18),  # no gap at all
    }
    out = discrimination(scores, scenes, events, draws=200)
    assert out["content_effect"]["all"]["estimate"] == pytest.approx(0.2)
    assert out["content_effect"]["visible_events"]["samples"] == 12
    assert out["image_effect"]["all"]["relative"] == pytest.approx(10.0)
    assert out["oracle_gap@0.75"]["all"]["estimate"] == pytest.approx(0.0)
    assert "does NOT discriminate" in out["verdict"] and "oracle gap" in out["verdict"]
    scores["anti_oracle@0.75"] = _rows([0.8] * 18)  # background-only plans better
    assert (
        "background-only tokens plan better" in discrimination(scores, scenes, events)["verdict"]
    )
    scores["anti_oracle@0.75"] = _rows([1.3] * 18)
    assert "discriminates on this dataset" in discrimination(scores, scenes, events)["verdict"]
    assert "Not established" in discrimination({"none@0": own}, scenes, events)["verdict"]
    table = by_event(own, events)
    assert table["steady"] == {"samples": 6, "l2_avg": pytest.approx(1.0)}
    assert table["visible_events"]["samples"] == 12
    assert table["stopped"] == {"samples": 0, "l2_avg": None}
    assert "collision_avg" not in table["steady"]  # only when collisions are given


def test_breakdown_of_collisions_per_event_group() -> None:
    events = ["steady", "braking_vehicle", "braking_vehicle", "stopped"]
    l2 = _rows([1.0] * 4)
    hits = np.zeros((4, 6))
    hits[1, 4:] = 1.0  # runs into the car ahead at 2.5 and 3 s
    hits[3, :] = np.nan  # no step counts (e.g. the logged ego itself collides)
    table = by_event(l2, events, hits)
    # braking_vehicle: 1 s 0/4, 2 s 0/8, 3 s 2/12 -> Avg = (0 + 0 + 1/6) / 3
    assert table["braking_vehicle"]["collision_avg"] == pytest.approx(100 / 18)
    assert table["steady"]["collision_avg"] == 0.0
    assert table["stopped"]["collision_avg"] is None and table["stopped"]["l2_avg"] == 1.0
    assert table["turning"] == {"samples": 0, "l2_avg": None, "collision_avg": None}
    assert table["visible_events"]["collision_avg"] == pytest.approx(100 / 18)
