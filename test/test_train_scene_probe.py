"""The scene probe: each level of the world's labels helps where the future depends on it."""

from __future__ import annotations

import pytest
from train_tiny import decision_world

from fastdrive_ros.data.world_labels import SceneLabel
from fastdrive_ros.train.scene_probe import label_features, render_table, scene_probe


def test_the_decision_level_reads_what_the_future_depends_on() -> None:
    figures = scene_probe(
        decision_world(0, future_from="decision"), decision_world(1, future_from="decision")
    )
    assert figures["+decision"] < 0.1 * figures["ego"]  # the future is the decision
    assert figures["full ego"] < 0.1 * figures["ego"]  # here the applied accel is it too
    assert figures["kind+gap"] > 0.8 * figures["ego"]  # random facts: nothing to read
    assert abs(figures["decision corr kind+gap"]) < 0.3  # nor tell the decision


def test_labels_that_do_not_cause_the_future_gain_nothing() -> None:
    figures = scene_probe(
        decision_world(0, future_from="hidden"), decision_world(1, future_from="hidden")
    )
    for level in ("kind+gap", "+closing", "+decision"):
        assert figures[level] > 0.9 * figures["ego"], level
    assert figures["full ego"] < 0.1 * figures["ego"]  # the applied accel still carries it


def test_missing_or_unrecorded_labels_are_named() -> None:
    records, labels = decision_world(0, future_from="decision", n=6)
    with pytest.raises(ValueError, match="no scene label"):
        label_features(records, {})
    labels[records[0].token] = SceneLabel("vehicle", 10.0)  # an older world: no decision
    with pytest.raises(ValueError, match="regenerate"):
        label_features(records, labels)


def test_labels_that_cause_the_decision_tell_it() -> None:
    def world(seed: int):
        records, labels = decision_world(seed, future_from="decision")
        return records, {  # the driver brakes harder the closer the lead
            t: type(label)(
                label.kind, label.gap_m, label.lead_speed, -3.0 * min(1, 5 / label.gap_m)
            )
            for t, label in labels.items()
        }

    figures = scene_probe(world(0), world(1))
    assert figures["decision corr kind+gap"] > 0.9


def test_table_has_a_row_per_world() -> None:
    figures = {"keyframes": 12, "prior": 1.0, "ego": 0.9, "kind+gap": 0.8, "+closing": 0.7}
    figures |= {"+decision": 0.6, "full ego": 0.65, "decision corr kind+gap": 0.5}
    table = render_table({"eval": figures})
    assert table.splitlines()[2] == (
        "| eval | 12 | 1.000 | 0.900 | 0.800 | 0.700 | 0.600 | 0.650 | 0.500 | - |"
    )
