"""The token probe finds a signal that is in the features, and none where there is none."""

from __future__ import annotations

import numpy as np
from train_tiny import imageless_record

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.token_probe import probe, row_profile


def _records(brake: np.ndarray, speed: np.ndarray) -> list[KeyframeRecord]:
    t = np.arange(1, 7) * 0.5
    out = []
    for i, (b, v) in enumerate(zip(brake, speed)):
        future = np.stack([v * t - 0.5 * b * t**2, 0 * t], axis=1)  # braking at b m/s^2
        ego = EgoState(np.zeros((7, 2)), speed=v, acceleration=-b, yaw_rate=0.0, steering=0.0)
        out.append(imageless_record(f"k{i}", f"s{i % 10}", ego, future))
    return out


def test_probe_reads_a_braking_cue_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    brake = rng.choice([0.0, 3.0], size=300)  # hidden from the minimal ego inputs
    records = _records(brake, rng.uniform(5, 12, size=300))
    cue = np.hstack([brake[:, None] + 0.3 * rng.normal(size=(300, 1)), rng.normal(size=(300, 7))])
    seen = probe(cue, records, alpha=10.0)
    assert seen["tokens"] < 0.6 * seen["ego"]  # the cue is read
    assert seen["shuffled"] > 1.5 * seen["tokens"]  # and it is this keyframe's cue that helps
    noise = probe(rng.normal(size=(300, 8)), records, alpha=10.0)
    assert abs(noise["tokens"] - noise["ego"]) < 0.1 * noise["ego"]


def test_row_profile_averages_the_middle_columns_per_row() -> None:
    tokens = np.zeros((1, 2 * 6 + 5, 1))  # a 2 x 6 front grid, then other cameras
    tokens[0, 2:4, 0] = 1.0  # row 0, columns 2-3 (the middle third)
    tokens[0, 6, 0] = 5.0  # row 1, column 0: outside the middle third
    assert row_profile(tokens, (2, 6)).tolist() == [[1.0, 0.0]]
