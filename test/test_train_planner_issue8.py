"""Issue 8's planner training: partial token sets, ego-status dropout, event oversampling, and
the probes' other-scene pairing and scene bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_tiny import imageless_record

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.train.planner import PlannerDataset, event_keyframes
from fastdrive_ros.train.probes import other_scene_pairing, sample_l2_avg, scene_bootstrap
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.token_subsets import SubsetPolicy


def _tokens(n: int = 60, width: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, width, generator=gen), torch.rand(n, generator=gen)


def test_subset_styles_keep_what_they_say() -> None:
    tokens, fg = _tokens()
    gen = torch.Generator().manual_seed(1)
    means = {}
    for style in ("fg_high", "fg_low", "camera", "random", "norm"):
        policy = SubsetPolicy(keep_min=0.3, full_share=0.0, styles=(style,), noise=0.0)
        kept = [policy.select(tokens, fg, cameras=6, generator=gen) for _ in range(20)]
        for k in kept:
            assert torch.equal(k, torch.sort(torch.unique(k)).values)  # ascending, distinct
            assert 0.3 * 60 - 1 <= len(k) <= 60
            if style == "camera":  # the same count from each of the 6 cameras
                assert len(set(torch.bincount(k // 10, minlength=6).tolist())) == 1
        means[style] = float(np.mean([fg[k].mean() for k in kept]))
        if style == "norm":
            k = kept[0]
            rest = torch.ones(60, dtype=torch.bool)
            rest[k] = False
            if rest.any():
                assert tokens[k].norm(dim=-1).min() >= tokens[rest].norm(dim=-1).max()
    assert means["fg_high"] > means["random"] > means["fg_low"]
    everything = SubsetPolicy(full_share=1.0).select(tokens, fg, 6)
    assert torch.equal(everything, torch.arange(60))
    # without masks the foreground styles fall back to random instead of failing
    nan = torch.full((60,), float("nan"))
    assert len(SubsetPolicy(full_share=0.0, styles=("fg_high",)).select(tokens, nan, 6)) >= 12


def _record(i: int, scene: str, future_x: float) -> KeyframeRecord:
    t = np.arange(-6, 1) * 0.5
    ego = EgoState(
        history_xy=np.stack([5.0 * t, 0 * t], axis=1),
        speed=5.0,
        acceleration=0.0,
        yaw_rate=0.0,
        steering=0.0,
    )
    future = np.stack([np.linspace(future_x / 6, future_x, 6), np.zeros(6)], axis=1)
    return imageless_record(f"t{i}", scene, ego, future)


def test_dataset_oversamples_events_and_drops_ego_status() -> None:
    # 5 m/s for 3 s is 15 m: a keyframe that stops at 4 m is an event, one at 15 m is not
    records = [_record(0, "a", 15.0), _record(1, "a", 4.0), _record(2, "b", 15.2)]
    assert event_keyframes(records).tolist() == [False, True, False]
    data = PlannerDataset(cache=None, records=records, width=8, event_weight=3)
    assert len(data) == 5 and sum(data.items[i][0] == 1 for i in range(5)) == 3
    assert all(data[i]["ego"].inputs == "full" for i in range(len(data)))
    dropped = PlannerDataset(cache=None, records=records, width=8, ego_dropout=1.0)
    assert all(dropped[i]["ego"].inputs == "minimal" for i in range(len(dropped)))
    both = PlannerDataset(cache=None, records=records, width=8, settings=("full", "minimal"))
    assert [both[i]["ego"].inputs for i in range(len(both))] == ["full", "minimal"] * 3
    # a short run takes a seeded subset of the epoch's samples
    short = PlannerDataset(cache=None, records=records, width=8, event_weight=3, max_items=3)
    again = PlannerDataset(cache=None, records=records, width=8, event_weight=3, max_items=3)
    assert len(short) == 3 and short.items == again.items


def test_probe_pairing_never_pairs_a_scene_with_itself() -> None:
    scenes = ["a"] * 5 + ["b"] * 2 + ["c"] * 9
    pair = other_scene_pairing(scenes, seed=3)
    assert all(scenes[i] != scenes[j] for i, j in enumerate(pair))
    assert np.array_equal(pair, other_scene_pairing(scenes, seed=3))  # fixed by seed


def test_scene_bootstrap_interval() -> None:
    scenes = [s for s in "abcdefgh" for _ in range(4)]
    own = np.ones(32)
    other = np.full(32, 1.3)
    effect, low, high = scene_bootstrap(own, other, scenes)
    assert abs(effect - 0.3) < 1e-9 and abs(low - 0.3) < 1e-9 and abs(high - 0.3) < 1e-9
    noisy = other + np.repeat(np.linspace(-0.5, 0.5, 8), 4)
    effect, low, high = scene_bootstrap(own, noisy, scenes)
    assert low < effect < high and low > 0.0


def test_sample_l2_avg_matches_the_definition() -> None:
    future = np.zeros((1, 6, 2))
    pred = np.zeros((1, 6, 2))
    pred[0, :, 0] = np.arange(1, 7)  # L2 1..6 m
    expected = np.mean([np.mean([1, 2]), np.mean([1, 2, 3, 4]), np.mean([1, 2, 3, 4, 5, 6])])
    assert np.isclose(sample_l2_avg(pred, future, np.ones((1, 6), bool))[0], expected)


def test_prior_shift_moves_each_setting_target_and_covers_every_keyframe() -> None:
    records = [_record(0, "a", 15.0), _record(1, "b", 4.0)]
    shift = {
        r.token: {"full": np.full((6, 2), 0.5 * (i + 1)), "minimal": np.full((6, 2), -1.0)}
        for i, r in enumerate(records)
    }
    both = PlannerDataset(
        cache=None, records=records, width=8, settings=("full", "minimal"), prior_shift=shift
    )
    for i in range(len(both)):
        index, setting = both.items[i]
        item = both[i]
        expected = records[index].future_xy + shift[records[index].token][setting]
        assert item["ego"].inputs == setting
        assert torch.allclose(item["future"], torch.as_tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError, match="no prior shift for 1 keyframes, e.g. t1"):
        PlannerDataset(cache=None, records=records, width=8, prior_shift={"t0": shift["t0"]})


class _Cache:
    """A token cache stand-in: each keyframe's tokens are its row number."""

    def __init__(self, count: int, n: int = 12, width: int = 8) -> None:
        self.rows = [torch.full((n, width), float(i)) for i in range(count)]

    def __len__(self) -> int:
        return len(self.rows)

    def tokens(self, index: int) -> torch.Tensor:
        return self.rows[index]

    def fg_fraction(self, index: int) -> torch.Tensor:
        return torch.rand(self.rows[index].shape[0])


def test_dataset_pairs_each_keyframe_with_the_one_before_at_the_same_positions() -> None:
    records = [_record(0, "a", 15.0), _record(1, "a", 4.0), _record(2, "b", 15.2)]
    data = PlannerDataset(
        cache=_Cache(3),
        records=records,
        width=8,
        keep_min=0.5,
        previous=[0, 0, 2],  # t1 follows t0; t0 and t2 have none (their own rows)
    )
    first, second, third = data[0], data[1], data[2]
    assert first["previous_tokens"] is None and third["previous_tokens"] is None
    assert second["previous_tokens"].shape == second["tokens"].shape
    assert (second["previous_tokens"] == 0.0).all() and (second["tokens"] == 1.0).all()
    with pytest.raises(ValueError, match="predecessor rows"):
        PlannerDataset(cache=_Cache(3), records=records, width=8, previous=[0, 0])
