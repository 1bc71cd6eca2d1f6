"""The scene probe: each level of the world's labels helps where the future depends on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from train_tiny import imageless_record

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.data.world_labels import SceneLabel
from fastdrive_ros.train.scene_probe import label_features, render_table, scene_probe


def _world(seed: int, *, future_from: str, n: int = 240):
    """Keyframes whose 3-s future brakes by the decision (or by a hidden cause), with labels."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, 7) * 0.5
    records, labels = [], {}
    for i in range(n):
        v = rng.uniform(3, 12)
        decided = rng.uniform(-3, 1)
        hidden = rng.uniform(-3, 1)  # what the labels do not know
        a = decided if future_from == "decision" else hidden
        future = np.stack([v * t + 0.5 * a * t**2, 0 * t], axis=1)
        ego = EgoState(np.zeros((7, 2)), speed=v, acceleration=a, yaw_rate=0.0, steering=0.0)
        record = imageless_record(f"k{seed}-{i}", f"s{i % 12}", ego, future)
        kind = ("none", "vehicle", "red_light")[i % 3]
        gap = math.inf if kind == "none" else rng.uniform(5, 60)
        labels[record.token] = SceneLabel(kind, gap, rng.uniform(0, 10), decided)
        records.append(record)
    return records, labels


def test_the_decision_level_reads_what_the_future_depends_on() -> None:
    figures = scene_probe(_world(0, future_from="decision"), _world(1, future_from="decision"))
    assert figures["+decision"] < 0.1 * figures["ego"]  # the future is the decision
    assert figures["full ego"] < 0.1 * figures["ego"]  # here the applied accel is it too
    assert figures["kind+gap"] > 0.8 * figures["ego"]  # random facts: nothing to read


def test_labels_that_do_not_cause_the_future_gain_nothing() -> None:
    figures = scene_probe(_world(0, future_from="hidden"), _world(1, future_from="hidden"))
    for level in ("kind+gap", "+closing", "+decision"):
        assert figures[level] > 0.9 * figures["ego"], level
    assert figures["full ego"] < 0.1 * figures["ego"]  # the applied accel still carries it


def test_missing_or_unrecorded_labels_are_named() -> None:
    records, labels = _world(0, future_from="decision", n=6)
    with pytest.raises(ValueError, match="no scene label"):
        label_features(records, {})
    labels[records[0].token] = SceneLabel("vehicle", 10.0)  # an older world: no decision
    with pytest.raises(ValueError, match="regenerate"):
        label_features(records, labels)


def test_table_has_a_row_per_world() -> None:
    figures = {"keyframes": 12, "prior": 1.0, "ego": 0.9, "kind+gap": 0.8, "+closing": 0.7}
    figures |= {"+decision": 0.6, "full ego": 0.65}
    table = render_table({"eval": figures})
    assert table.splitlines()[2] == "| eval | 12 | 1.000 | 0.900 | 0.800 | 0.700 | 0.600 | 0.650 |"
