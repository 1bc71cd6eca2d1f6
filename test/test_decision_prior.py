"""The decision prior: the kinematic prior driven by the read decision, its gains and bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_planner_decision_reader import _paced_reader, _reading_vla
from test_planner_scene_reader import GRID, _ego, _invoke, _plan
from train_tiny import VERSION, imageless_record

from fastdrive_ros.core_types import EgoState, restrict_ego
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.decision_prior import DecisionPrior, added_acceleration, check_gains
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.nn.frame_memory import FrameMemory
from fastdrive_ros.nn.vla import VLA, VLAConfig
from fastdrive_ros.train.decision_prior import fit_decision_gains, prior_l2

GAINS = {"full": 0.2, "minimal": 0.8}


def _status(speed: float, acceleration: float = 0.0, inputs: str = "full") -> EgoState:
    ego = EgoState(np.zeros((7, 2)), speed=speed, acceleration=acceleration, yaw_rate=0.0,
                   steering=0.0)  # fmt: skip
    return restrict_ego(ego, inputs)


def test_the_added_acceleration_brakes_to_a_stop_and_stays_there() -> None:
    # 6 m/s braking at 3 m/s^2 stops after 2 s, 6 m on: 2.625, 4.5, 5.625, 6, 6, 6 (by hand)
    for inputs in ("minimal", "full"):
        plan = kinematic_prior(_status(6.0, inputs=inputs), added_acceleration=-3.0)
        assert plan[:, 0] == pytest.approx([2.625, 4.5, 5.625, 6.0, 6.0, 6.0], abs=1e-9)
        assert plan[:, 1] == pytest.approx([0.0] * 6, abs=1e-12)
    # full adds it to the measured acceleration: -1 measured, -2 added = the same stop
    both = kinematic_prior(_status(6.0, -1.0), added_acceleration=-2.0)
    assert both[:, 0] == pytest.approx([2.625, 4.5, 5.625, 6.0, 6.0, 6.0], abs=1e-9)
    # speeding up: v t + a t^2 / 2; nothing added = the plain prior (constant velocity here)
    ahead = kinematic_prior(_status(4.0, inputs="minimal"), added_acceleration=1.0)
    t = np.arange(1, 7) * 0.5
    assert ahead[:, 0] == pytest.approx(4 * t + 0.5 * t**2)
    assert kinematic_prior(_status(4.0, inputs="minimal"))[:, 0] == pytest.approx(4 * t)
    standing = kinematic_prior(_status(0.0, inputs="minimal"), added_acceleration=-2.0)
    assert (standing == 0).all()  # braking at standstill does not reverse


def test_gains_cover_every_setting_and_scale_each_decision() -> None:
    prior = DecisionPrior(GAINS)
    egos = [_status(6.0, inputs="minimal"), _status(6.0, inputs="full")]
    assert prior.added_accelerations(egos, torch.tensor([-3.0, -3.0])) == pytest.approx(
        [-2.4, -0.6]
    )
    driven = prior(egos, torch.tensor([-3.0, -3.0]), torch.device("cpu"))
    assert driven[0].numpy() == pytest.approx(kinematic_prior(egos[0], -2.4), abs=1e-5)
    with pytest.raises(ValueError, match="missing \\['minimal'\\]"):
        check_gains({"full": 0.2})
    with pytest.raises(ValueError, match="unknown \\['fast'\\]"):
        check_gains({**GAINS, "fast": 1.0})
    with pytest.raises(ValueError, match="finite"):
        check_gains({"full": float("nan"), "minimal": 1.0})
    with pytest.raises(ValueError, match="one decision per sample"):
        prior.added_accelerations(egos, torch.tensor([1.0]))


def _driven_world(seed: int = 0, n: int = 120):
    """Keyframes whose future accelerates by a decision; the full status measures it already."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, 7) * 0.5
    records, decided = [], rng.uniform(-2, 1, n)
    for i, a in enumerate(decided):
        v = rng.uniform(8, 12)  # never stops within 3 s
        future = np.stack([v * t + 0.5 * a * t**2, 0 * t], axis=1)
        ego = EgoState(np.zeros((7, 2)), speed=v, acceleration=a, yaw_rate=0.0, steering=0.0)
        records.append(imageless_record(f"k{i}", f"s{i % 10}", ego, future))
    return records, decided


def test_the_gain_fit_trusts_a_decision_as_far_as_it_tells_the_future() -> None:
    records, decided = _driven_world()
    exact = fit_decision_gains(records, decided)
    assert exact["minimal"]["gain"] == pytest.approx(1.0, abs=0.01)  # the decision is the future
    assert exact["minimal"]["l2_driven"] < 0.01 < exact["minimal"]["l2_kinematic"]
    assert exact["full"]["gain"] == pytest.approx(0.0, abs=0.01)  # CTRA measured it already
    noisy = fit_decision_gains(records, decided + np.random.default_rng(1).normal(0, 1.5, 120))
    assert 0.1 < noisy["minimal"]["gain"] < 0.7  # a noisy reading moves the plan less
    # the benchmark can fail: a decision that says nothing about the future earns no gain
    shuffled = fit_decision_gains(records, np.random.default_rng(2).permutation(decided))
    assert shuffled["minimal"]["gain"] < 0.15
    kinematic = shuffled["minimal"]["l2_kinematic"]
    assert shuffled["minimal"]["l2_driven"] == pytest.approx(kinematic, rel=0.05)
    assert prior_l2(records, 0 * decided, "minimal") == pytest.approx(kinematic)
    with pytest.raises(ValueError, match="one finite decision per record"):
        fit_decision_gains(records, decided[:-1])


def test_toward_moves_the_measured_acceleration_a_share_of_the_way_to_the_decision() -> None:
    # full: measured -1, decision -3, gain 0.5 -> -2 in all; "added" would put -1.5 on top
    braking = _status(6.0, -1.0)
    assert added_acceleration(0.5, -3.0, braking, "toward") == pytest.approx(-1.0)
    assert added_acceleration(0.5, -3.0, braking, "added") == pytest.approx(-1.5)
    toward = DecisionPrior(GAINS | {"full": 0.5}, "toward")
    driven = toward([braking], torch.tensor([-3.0]), torch.device("cpu"))[0].numpy()
    assert driven == pytest.approx(kinematic_prior(_status(6.0, -2.0)), abs=1e-5)
    # gain 1 is the decision itself, whatever was measured; the minimal status measures none
    assert added_acceleration(1.0, 0.5, braking, "toward") + braking.acceleration == 0.5
    minimal = _status(6.0, inputs="minimal")
    assert added_acceleration(0.8, -3.0, minimal, "toward") == pytest.approx(-2.4)
    with pytest.raises(ValueError, match="decision form"):
        DecisionPrior(GAINS, "instead")


def _lagging_world(seed: int = 0, n: int = 120):
    """The full status measures yesterday's acceleration; the future follows the decision."""
    records, decided = _driven_world(seed, n)
    rng = np.random.default_rng(seed + 1)
    stale = []
    for record in records:
        ego = record.ego
        lagged = EgoState(ego.history_xy, speed=ego.speed, acceleration=rng.uniform(-2, 1),
                          yaw_rate=0.0, steering=0.0)  # fmt: skip
        stale.append(imageless_record(record.token, record.scene, lagged, record.future_xy))
    return stale, decided


def test_toward_is_fitted_where_the_measured_acceleration_lags_the_decision() -> None:
    records, decided = _lagging_world()
    toward = fit_decision_gains(records, decided, "toward")
    assert toward["full"]["gain"] == pytest.approx(1.0, abs=0.01)  # the decision replaces it
    assert toward["full"]["l2_driven"] < 0.01 < toward["full"]["l2_kinematic"]
    added = fit_decision_gains(records, decided, "added")
    assert added["full"]["l2_driven"] > 10 * toward["full"]["l2_driven"]  # it cannot undo a0
    assert toward["minimal"] == pytest.approx(added["minimal"])  # the forms agree there
    # the benchmark can fail: a shuffled decision earns little gain in either form
    shuffled = fit_decision_gains(records, np.random.default_rng(2).permutation(decided), "toward")
    assert shuffled["full"]["l2_driven"] > 0.5 * shuffled["full"]["l2_kinematic"]


def test_the_full_status_prior_is_driven_by_the_pace_where_one_was_read() -> None:
    prior = DecisionPrior({"full": 1.0, "minimal": 1.0}, "toward")
    egos = [_status(6.0, -1.0), _status(6.0, inputs="minimal"), _status(6.0, -1.0)]
    decision, pace = torch.tensor([-3.0, -3.0, -3.0]), torch.tensor([0.5, 0.5, float("nan")])
    # full + pace: toward the pace; minimal: the decision (no pace for it); NaN pace: decision
    added = prior.added_accelerations(egos, decision, pace)
    assert added == pytest.approx([1.5, -3.0, -2.0])
    assert prior.added_accelerations(egos, decision) == pytest.approx([-2.0, -3.0, -2.0])
    driven = prior(egos, decision, torch.device("cpu"), pace)[0].numpy()
    assert driven == pytest.approx(kinematic_prior(_status(6.0, 0.5)), abs=1e-5)
    with pytest.raises(ValueError, match="one pace per sample"):
        prior.added_accelerations(egos, decision, pace[:2])


def test_gains_are_fitted_per_setting_on_what_each_prior_is_driven_toward() -> None:
    # the future follows the decision; the full status gets a wrong reading, the minimal the
    # right one: each setting's gain says what its own reading is worth
    records, decided = _lagging_world()
    wrong = np.random.default_rng(3).permutation(decided)
    fits = fit_decision_gains(records, {"full": wrong, "minimal": decided}, "toward")
    assert fits["minimal"]["gain"] == pytest.approx(1.0, abs=0.01)
    assert fits["full"]["l2_driven"] > 0.5 * fits["full"]["l2_kinematic"]
    swapped = fit_decision_gains(records, {"full": decided, "minimal": wrong}, "toward")
    assert swapped["full"]["gain"] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="no decisions for the minimal"):
        fit_decision_gains(records, {"full": decided}, "toward")


def test_the_prior_is_scored_by_the_evaluation_l2_avg() -> None:
    # one keyframe 1 m off at every step but the last (4 m): L2 Avg = (1 + 1 + 1.5) / 3, not
    # the plain mean over steps (1.5); the last step counts only in the 3-s horizon
    ego = _status(5.0, inputs="minimal")
    future = kinematic_prior(ego) + np.array([[0.0, 1.0]] * 5 + [[0.0, 4.0]])
    record = imageless_record("k", "s", restrict_ego(_status(5.0), "full"), future)
    assert prior_l2([record], np.zeros(1), "minimal") == pytest.approx((1 + 1 + 1.5) / 3)


def _decision_vla() -> VLA:
    vla = _reading_vla()
    vla.use_decision_prior(GAINS)
    return vla


def test_the_plan_moves_with_the_read_decision_by_the_driven_prior() -> None:
    """Sensitivity probe: the read decision moves the plan as far as the physics says."""
    vla = _decision_vla()
    planner = vla.planner
    with torch.no_grad():  # a random head's metre-scale zigzags would be projected forward
        planner.waypoint_head.mlp[-1].weight.mul_(0.01)  # (nn/forward_only.py): keep it small
    gen = torch.Generator().manual_seed(4)
    before, now = torch.randn(12, 64, generator=gen), torch.randn(12, 64, generator=gen)
    index = torch.arange(12)
    corridor = planner.previous_corridors([before], [index], GRID)[0]

    def plan(ego: EgoState) -> np.ndarray:  # `now`, with `before` 0.5 s earlier in memory
        memory = FrameMemory()
        memory.at(10.0, "s").keep(corridor)
        slot = memory.at(10.5, "s")
        return planner.plan(
            kept_tokens=now, kept_index=index, grid_thw=GRID, ego=ego, memory=slot
        ).waypoints

    for ego in (_ego(8.0), restrict_ego(_ego(8.0), "minimal")):
        driven = plan(ego)
        with torch.no_grad():
            _, facts = planner.read_scene([now], [index], GRID, [ego], [corridor])
        decision = float(facts.decision[0])
        planner.decision_prior, planner.waypoint_prior = None, "kinematic"
        plain = plan(ego)
        planner.use_decision_prior(GAINS)
        moved = kinematic_prior(ego, GAINS[ego.inputs] * decision) - kinematic_prior(ego)
        assert abs(decision) > 0.2  # the reader reads the motion since the frame before
        assert driven - plain == pytest.approx(moved, abs=1e-4)
        assert abs(moved[-1, 0]) > 0.1
    # training's batched forward adds the same prior
    egos = [_ego(8.0), restrict_ego(_ego(5.0), "minimal")]
    with torch.no_grad():
        batched = planner.forward_training(
            visual_tokens=[now, now[:7]], kept_index=[index, index[:7]], grid_thw=GRID,
            egos=egos,
        ).waypoints  # fmt: skip
    for b, (kept, ego) in enumerate(zip((12, 7), egos)):
        alone = _plan(vla, now[:kept], index[:kept], ego)
        assert batched[b].numpy() == pytest.approx(alone, abs=1e-4)


def test_the_full_status_plan_follows_the_read_pace_and_the_minimal_one_the_decision() -> None:
    vla = _reading_vla()
    planner = vla.planner
    planner.attach_decision_reader(_paced_reader(ahead=1.0))
    planner.use_decision_prior({"full": 1.0, "minimal": 1.0}, "toward")
    with torch.no_grad():
        planner.waypoint_head.mlp[-1].weight.mul_(0.01)
    now, index = torch.randn(12, 64, generator=torch.Generator().manual_seed(4)), torch.arange(12)
    for ego in (_ego(8.0), restrict_ego(_ego(8.0), "minimal")):
        with torch.no_grad():
            _, facts = planner.read_scene([now], [index], GRID, [ego])
        driven = _plan(vla, now, index, ego)
        planner.decision_prior, planner.waypoint_prior = None, "kinematic"
        plain = _plan(vla, now, index, ego)
        planner.use_decision_prior({"full": 1.0, "minimal": 1.0}, "toward")
        if ego.inputs == "full":  # measured 0: the trees read about 1 m/s^2 ahead of it
            assert float(facts.pace[0]) == pytest.approx(1.0, abs=0.3)
            target = float(facts.pace[0])
        else:
            assert torch.isnan(facts.pace).all()
            target = float(facts.decision[0])
        moved = kinematic_prior(ego, target) - kinematic_prior(ego)
        assert driven - plain == pytest.approx(moved, abs=1e-4)


def test_the_bundle_keeps_the_gains_and_refuses_what_cannot_drive(tmp_path: Path) -> None:
    vla = _decision_vla()
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(5))
    before = _plan(vla, tokens, torch.arange(12), _ego(7.0))
    vla.save_pretrained(tmp_path / "b")
    loaded = VLA.from_pretrained(tmp_path / "b")
    assert loaded.config.waypoint_prior == "kinematic_decision"
    assert loaded.config.decision_gains == GAINS and loaded.config.decision_form == "added"
    toward = _reading_vla()
    toward.use_decision_prior(GAINS, "toward")
    toward.save_pretrained(tmp_path / "t")
    assert VLA.from_pretrained(tmp_path / "t").planner.decision_prior.form == "toward"
    assert _plan(loaded, tokens, torch.arange(12), _ego(7.0)) == pytest.approx(before, abs=1e-5)
    fields = {**vla.config.__dict__}
    with pytest.raises(ValueError, match="decision_gains go with"):
        VLAConfig(**{**fields, "waypoint_prior": "kinematic"})
    with pytest.raises(ValueError, match="reads the scene reader"):
        VLAConfig(**{**fields, "scene_reader": False, "decision_reader": False})
    with pytest.raises(ValueError, match="missing"):
        VLAConfig(**{**fields, "decision_gains": {"full": 1.0}})
    with pytest.raises(ValueError, match="decision form"):
        VLAConfig(**{**fields, "decision_form": "instead"})
    ego_mlp = VLA.from_pretrained(tmp_path / "b")
    ego_mlp.config = VLAConfig(**{**fields, "waypoint_prior": "ego_mlp", "decision_gains": None})
    with pytest.raises(ValueError, match="extends the kinematic prior"):
        ego_mlp.use_decision_prior(GAINS)


def _train_args(bundle: Path, world: Path, out: Path) -> list[str]:
    args = ["train-planner", "--model", str(bundle), "--dataroot", str(world)]
    args += ["--version", VERSION, "--split", "train", "--val-split", "val", "--out", str(out)]
    args += ["--device", "cpu", "--no-progress", "--epochs", "1", "--max-items", "4"]
    return args + ["--decision-prior"]


def test_train_planner_fits_the_gains_then_trains_over_the_driven_prior(
    world: Path, tmp_path: Path
) -> None:
    vla = VLA.build(tiny_config(cameras=6, ego_numbers=True), seed=0)
    vla.add_scene_reader()
    vla.add_decision_reader(_paced_reader())  # the full setting's gain is fitted on its pace
    bundle = vla.save_pretrained(tmp_path / "reading")
    result = _invoke(_train_args(bundle, world, tmp_path / "out"))
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "decision prior, minimal ego inputs: gain" in result.output
    trained = VLA.from_pretrained(tmp_path / "out" / "model")
    assert trained.config.waypoint_prior == "kinematic_decision"
    gains = trained.config.decision_gains
    assert set(gains) == {"full", "minimal"} and all(0 <= g <= 2 for g in gains.values())
    # without a decision reader there is nothing fitted to drive the plan with: refused
    plain = VLA.build(tiny_config(cameras=6, ego_numbers=True), seed=0)
    plain.add_scene_reader()
    bundle = plain.save_pretrained(tmp_path / "plain")
    result = _invoke(_train_args(bundle, world, tmp_path / "out2"))
    assert result.exit_code == 2 and "pruned_reading --bundle-out" in result.output
    assert not (tmp_path / "out2").exists()  # refused before any token was cached
    # a form without the prior it shapes is a usage error too
    args = [a for a in _train_args(bundle, world, tmp_path / "out3") if a != "--decision-prior"]
    result = _invoke([*args, "--decision-form", "toward"])
    assert result.exit_code == 2 and "add --decision-prior" in result.output
