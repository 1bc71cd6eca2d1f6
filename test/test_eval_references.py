"""Camera-free references: CTRA against hand-computed values, and the ego-status MLP."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState, restrict_ego
from fastdrive_ros.eval.constant_velocity import constant_velocity_plan
from fastdrive_ros.nn.ctra import ctra_plan, ctra_positions
from fastdrive_ros.nn.ego_mlp import (
    EgoMLP,
    ego_features,
    ego_mlp_path,
    feature_count,
    kinematic_prior,
)
from fastdrive_ros.nn.integrity import WeightsIntegrityError
from fastdrive_ros.train.ego_mlp import (
    EgoExample,
    EgoMLPConfig,
    cross_fitted_plans,
    l2_avg,
    train_bundle_ego_mlps,
    train_ego_mlp,
)


def _ego(speed: float, acc: float = 0.0, yaw_rate: float = 0.0, command: str = "straight"):
    history = np.stack([np.arange(-6, 1) * 0.5 * speed, np.zeros(7)], axis=1)
    return EgoState(history, speed, acc, yaw_rate, 0.0, command=command)  # type: ignore[arg-type]


def test_ctra_straight_lines_by_hand() -> None:
    # 10 m/s, +2 m/s^2: x(3) = 30 + 9 = 39 m; x(1) = 10 + 1 = 11 m
    plan = ctra_plan(_ego(10.0, 2.0))
    assert plan[1] == pytest.approx([11.0, 0.0])
    assert plan[5] == pytest.approx([39.0, 0.0])
    # 6 m/s, -4 m/s^2 stops at 1.5 s after 4.5 m and stays there (no reversing)
    plan = ctra_plan(_ego(6.0, -4.0))
    assert plan[0] == pytest.approx([3.0 - 0.5, 0.0])  # 6*0.5 - 2*0.25
    assert plan[2:, 0] == pytest.approx([4.5] * 4)


def test_ctra_turns_by_hand() -> None:
    # no acceleration: CTRA is exactly the constant-velocity arc
    ego = _ego(8.0, 0.0, 0.2)
    assert ctra_plan(ego) == pytest.approx(constant_velocity_plan(ego))
    # v0 = 10, a = 1, w = 0.5, t = 2: x = 12 sin(1) / 0.5 + (cos 1 - 1) / 0.25
    #                                 y = 20 - 12 cos(1) / 0.5 + sin(1) / 0.25
    x = 24 * math.sin(1) + 4 * (math.cos(1) - 1)
    y = 20 - 24 * math.cos(1) + 4 * math.sin(1)
    assert ctra_plan(_ego(10.0, 1.0, 0.5))[3] == pytest.approx([x, y])
    assert (x, y) == pytest.approx((18.357, 10.399), abs=1e-3)


def test_ctra_agrees_with_numerical_integration() -> None:
    for v0, a, w in [(5.0, 1.5, 0.3), (12.0, -1.0, -0.25), (9.0, 0.5, 5e-4), (3.0, -2.5, 0.4)]:
        fine = np.linspace(0.0, 3.0, 30001)
        speed = np.maximum(v0 + a * fine, 0.0)
        heading = w * fine
        dt = fine[1] - fine[0]
        vx, vy = speed * np.cos(heading), speed * np.sin(heading)
        x = np.concatenate([[0], np.cumsum((vx[1:] + vx[:-1]) / 2 * dt)])
        y = np.concatenate([[0], np.cumsum((vy[1:] + vy[:-1]) / 2 * dt)])
        times = 0.5 * np.arange(1, 7)
        idx = np.searchsorted(fine, times)
        expected = np.stack([x[idx], y[idx]], axis=1)
        got = ctra_positions(v0, a, w, times)
        # stopped egos turn no further: the integral above keeps turning at speed 0, same place
        assert got == pytest.approx(expected, abs=2e-3), (v0, a, w)


def test_ctra_degenerates_to_constant_velocity_with_minimal_inputs() -> None:
    ego = _ego(7.0, -1.5, 0.3)
    minimal = restrict_ego(ego, "minimal")
    assert ctra_plan(minimal) == pytest.approx(constant_velocity_plan(minimal))
    assert ctra_plan(minimal)[:, 1] == pytest.approx(np.zeros(6))
    assert not np.allclose(ctra_plan(ego), ctra_plan(minimal))


def test_features_see_only_what_the_setting_allows() -> None:
    a, b = _ego(7.0, -2.0, 0.3, "left"), _ego(7.0, 1.0, -0.1, "left")
    assert feature_count("minimal") == 4 and feature_count("full") == 19
    assert np.array_equal(ego_features(a, "minimal"), ego_features(b, "minimal"))
    assert not np.array_equal(ego_features(a, "full"), ego_features(b, "full"))
    assert ego_features(a, "minimal").tolist() == [7.0, 1.0, 0.0, 0.0]
    assert kinematic_prior(a, "minimal") == pytest.approx(constant_velocity_plan(_ego(7.0)))


def _toy(n: int, seed: int) -> list[EgoExample]:
    """Futures = CTRA + a residual the MLP can learn: a lateral drift set by the command and
    a speed-dependent slow-down that CTRA (no such term) cannot know."""
    rng = np.random.default_rng(seed)
    out = []
    t = 0.5 * np.arange(1, 7)
    for _ in range(n):
        command = str(rng.choice(["left", "right", "straight"]))
        ego = _ego(float(rng.uniform(2, 14)), float(rng.uniform(-1, 1)), 0.0, command)
        drift = {"left": 1.0, "right": -1.0, "straight": 0.0}[command] * 0.3 * t**2
        slow = -0.05 * ego.speed * t**2
        future = ctra_plan(ego) + np.stack([slow, drift], axis=1)
        valid = np.ones(6, bool)
        if rng.random() < 0.1:  # some keyframes near a scene's end
            valid[4:] = False
            future[4:] = np.nan
        out.append(EgoExample(ego, future, valid))
    return out


def _eval_l2(plans: list[np.ndarray], examples: list[EgoExample]) -> float:
    pred = torch.as_tensor(np.stack(plans))
    target = torch.as_tensor(np.stack([np.nan_to_num(e.future_xy) for e in examples]))
    valid = torch.as_tensor(np.stack([e.future_valid for e in examples]))
    return l2_avg(pred, target, valid)


def test_ego_mlp_learns_a_residual_that_ctra_cannot(tmp_path: Path) -> None:
    train, test = _toy(400, 0), _toy(100, 1)
    config = EgoMLPConfig(hidden=32, epochs=60, batch_size=64, seed=0)
    model, summary = train_ego_mlp(train, "full", config)
    ctra_l2 = _eval_l2([ctra_plan(e.ego) for e in test], test)
    mlp_l2 = _eval_l2([model.plan(e.ego) for e in test], test)
    assert ctra_l2 > 0.5
    assert mlp_l2 < 0.4 * ctra_l2, (mlp_l2, ctra_l2)
    assert summary["train_l2_avg"] < summary["train_l2_avg_prior"]
    # the same seed trains the same model
    again, _ = train_ego_mlp(train, "full", config)
    assert np.allclose(again.plan(test[0].ego), model.plan(test[0].ego))
    # it loads back from safetensors and predicts the same
    path = model.save(tmp_path / "full.safetensors", **summary)
    loaded = EgoMLP.load(path, inputs="full")
    assert np.allclose(loaded.plan(test[3].ego), model.plan(test[3].ego), atol=1e-6)
    assert EgoMLP.metadata(path)["samples"] == 400
    with pytest.raises(ValueError, match="trained for ego inputs 'full'"):
        EgoMLP.load(path, inputs="minimal")


def test_bundle_gets_one_ego_mlp_per_setting(tmp_path: Path) -> None:
    examples = _toy(120, 2)
    config = EgoMLPConfig(hidden=16, epochs=20, batch_size=64)
    out = train_bundle_ego_mlps(examples, tmp_path, config=config, source={"dataroot": "x"})
    assert set(out) == {"full", "minimal"}
    minimal = EgoMLP.load(ego_mlp_path(tmp_path, "minimal"), inputs="minimal")
    # minimal: only command and speed reach it, so acceleration cannot change its plan
    a, b = _ego(8.0, -3.0, 0.2, "left"), _ego(8.0, 2.0, -0.2, "left")
    assert np.allclose(minimal.plan(a), minimal.plan(b))
    full = EgoMLP.load(ego_mlp_path(tmp_path, "full"))
    assert not np.allclose(full.plan(a), full.plan(b))
    assert EgoMLP.metadata(ego_mlp_path(tmp_path, "full"))["source"] == {"dataroot": "x"}
    with pytest.raises(FileNotFoundError, match="train-ego-mlp"):
        EgoMLP.load(tmp_path / "nope.safetensors")
    # both files are in the folder's SHA256SUMS and a changed byte is refused at load
    sums = (tmp_path / "ego_mlp" / "SHA256SUMS").read_text()
    assert "full.safetensors" in sums and "minimal.safetensors" in sums
    path = ego_mlp_path(tmp_path, "full")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="train-ego-mlp"):
        EgoMLP.load(path)
    with pytest.raises(ValueError, match="at least two"):
        train_ego_mlp(examples[:1], "full")


def test_train_ego_mlp_command_refuses_bad_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fastdrive_ros.cli import build_app

    args = ["train-ego-mlp", "--model", str(tmp_path), "--dataroot", "x", "--version", "v"]
    bad = CliRunner().invoke(build_app(), [*args, "--ego-inputs", "everything"])
    assert bad.exit_code == 2 and "full, minimal" in bad.output
    no_bundle = CliRunner().invoke(build_app(), args)
    assert no_bundle.exit_code == 2 and "not a model bundle" in no_bundle.output


def test_cross_fitted_plans_never_see_their_own_scene() -> None:
    rng = np.random.default_rng(4)
    examples = _toy(72, 3)
    # the futures carry noise no ego input explains: an MLP fits it on its own keyframes only
    examples = [
        EgoExample(e.ego, e.future_xy + rng.normal(0.0, 0.8, (6, 2)), e.future_valid)
        for e in examples
    ]
    scenes = [f"s{i // 8}" for i in range(72)]  # 9 scenes
    config = EgoMLPConfig(hidden=64, epochs=150, batch_size=16, seed=2)
    held_out = cross_fitted_plans(examples, scenes, "full", config, folds=3)
    fitted, _ = train_ego_mlp(examples, "full", config)
    in_sample = _eval_l2([fitted.plan(e.ego) for e in examples], examples)
    assert _eval_l2(list(held_out), examples) > 1.1 * in_sample
    # a scene's own futures cannot move its plans: change them, its plans stay to the bit
    changed = [
        EgoExample(e.ego, e.future_xy + 3.0, e.future_valid) if s == "s0" else e
        for e, s in zip(examples, scenes)
    ]
    again = cross_fitted_plans(changed, scenes, "full", config, folds=3)
    own = [i for i, s in enumerate(scenes) if s == "s0"]
    others = [i for i, s in enumerate(scenes) if s != "s0"]
    assert np.array_equal(again[own], held_out[own])
    assert not np.allclose(again[others], held_out[others])  # those models did see s0
    for folds in (1, 10):
        with pytest.raises(ValueError, match="need 2 <= folds <= 9"):
            cross_fitted_plans(examples, scenes, "full", config, folds=folds)
