"""The decision probe reads a decision that is in the tokens, and finds none in noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_tiny import VERSION, decision_world, tiny_world

from fastdrive_ros.train.decision_probe import (
    ProbeSet,
    decision_probe,
    read_training_worlds,
    render_table,
)
from fastdrive_ros.train.records import read_records


def _tokens(labels, records, *, signal: bool, seed: int) -> np.ndarray:
    """[S, 4, 8] noise tokens; with `signal`, channel 0 of every token carries the decision."""
    rng = np.random.default_rng(seed)
    tokens = rng.normal(size=(len(records), 4, 8))
    if signal:
        tokens[:, :, 0] = np.array([labels[r.token].decided_acceleration for r in records])[
            :, None
        ]
    return tokens


def _sets(signal: bool):
    train, test = (
        decision_world(0, future_from="decision"),
        decision_world(1, future_from="decision"),
    )
    return (
        ProbeSet.of(*train, _tokens(train[1], train[0], signal=signal, seed=2)),
        {"held": ProbeSet.of(*test, _tokens(test[1], test[0], signal=signal, seed=3))},
    )


def test_a_decision_in_the_tokens_is_read_and_is_this_keyframes() -> None:
    train, tests = _sets(signal=True)
    figures = decision_probe(train, tests, epochs=40, folds=4)["held"]
    assert figures["corr"] > 0.8 and figures["train_corr"] > 0.8
    assert figures["own"] < 0.5 * figures["ego"]
    assert figures["shuffled"] > 1.5 * figures["own"]  # another scene's tokens do not help
    assert "| t | held | " in render_table({"t": {"held": figures}})


def test_noise_tokens_buy_nothing() -> None:
    train, tests = _sets(signal=False)
    figures = decision_probe(train, tests, epochs=10, folds=4)["held"]
    assert abs(figures["corr"]) < 0.3
    assert figures["own"] > 0.9 * figures["ego"]


def _moving_tokens(labels, records, seed: int) -> tuple[np.ndarray, dict[str, str]]:
    """[S, 4, 8] noise tokens whose channel 0 walks by the decision from one keyframe of a scene
    to the next: only two frames show it. Also the chain {token: the keyframe before}."""
    rng = np.random.default_rng(seed)
    tokens = rng.normal(size=(len(records), 4, 8))
    last: dict[str, tuple[str, float]] = {}
    chain = {}
    for i, r in enumerate(records):
        token, level = last.get(r.scene, ("", rng.normal(scale=5.0)))
        level += labels[r.token].decided_acceleration
        tokens[i, :, 0] = level
        if token:
            chain[r.token] = token
        last[r.scene] = (r.token, level)
    return tokens, chain


def test_a_decision_only_motion_shows_needs_two_frames() -> None:
    worlds = [decision_world(s, future_from="decision") for s in (0, 1)]
    (train, held) = (ProbeSet.of(*w, *_moving_tokens(w[1], w[0], seed=s)) for s, w in
                     zip((2, 3), worlds))  # fmt: skip
    one = decision_probe(train, {"held": held}, frames=1, epochs=30, folds=4)["held"]
    two = decision_probe(train, {"held": held}, frames=2, epochs=30, folds=4)["held"]
    assert two["corr"] > 0.8 and abs(one["corr"]) < 0.5
    assert two["own"] < 0.7 * one["own"]
    assert two["shuffled"] > 1.5 * two["own"]  # another scene's pair of frames does not help


def test_without_a_chain_every_keyframe_is_its_own_predecessor() -> None:
    records, labels = decision_world(0, future_from="decision", n=6)
    tokens = np.arange(6 * 2 * 3, dtype=float).reshape(6, 2, 3)
    alone = ProbeSet.of(records, labels, tokens)
    assert torch.equal(alone.previous, alone.tokens)
    chained = ProbeSet.of(
        records,
        labels,
        tokens,
        {records[1].token: records[0].token, records[2].token: "not-a-keyframe"},
    )
    assert torch.equal(chained.previous[1], chained.tokens[0])
    assert torch.equal(chained.previous[2], chained.tokens[2])
    with pytest.raises(ValueError, match="frames must be 1 or 2"):
        decision_probe(alone, {}, frames=3)


def test_the_closing_speed_target_is_zero_where_nothing_binds() -> None:
    records, labels = decision_world(0, future_from="decision", n=6)
    probe = ProbeSet.of(records, labels, np.zeros((6, 2, 3)), target="closing_speed")
    for r, value in zip(records, probe.target):
        label = labels[r.token]
        want = 0.0 if label.kind == "none" else r.ego.speed - label.lead_speed
        assert value == pytest.approx(want)
    with pytest.raises(ValueError, match="target must be one of"):
        ProbeSet.of(records, labels, np.zeros((6, 2, 3)), target="gap")


def test_rows_must_match_and_decisions_must_be_recorded() -> None:
    records, labels = decision_world(0, future_from="decision", n=6)
    with pytest.raises(ValueError, match="5 token rows for 6 records"):
        ProbeSet.of(records, labels, np.zeros((5, 4, 8)))
    labels[records[0].token] = type(labels[records[0].token])("vehicle", 10.0)
    with pytest.raises(ValueError, match="regenerate"):
        ProbeSet.of(records, labels, np.zeros((6, 4, 8)))


def test_training_worlds_join_with_their_scenes_kept_apart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    first, second = tiny_world(tmp_path_factory), tiny_world(tmp_path_factory, seed=6)
    records, labels, chain = read_training_worlds([first, second], VERSION)
    alone = [
        read_records(dataroot=root, version=VERSION, progress=False) for root in (first, second)
    ]
    assert [r.token for r in records] == [r.token for rs in alone for r in rs]
    assert all(r.token in labels for r in records)
    # both worlds name their scenes scene-0000...; the folds must not merge them
    assert {r.scene for r in alone[0]} == {r.scene for r in alone[1]}
    assert len({r.scene for r in records}) == 2 * len({r.scene for r in alone[0]})
    assert all(chain.keys() & {r.token for r in rs} for rs in alone)  # both worlds' chains
    ProbeSet.of(records, labels, np.zeros((len(records), 2, 4)), chain)  # every row labelled
    with pytest.raises(ValueError, match="give each world once"):
        read_training_worlds([first, first], VERSION)
