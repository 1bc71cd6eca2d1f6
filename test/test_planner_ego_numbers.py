"""Issue 8's planner parts: ego status as numbers, the kinematic prior, both ego-input settings,
and the opt-in gating that keeps older bundles planning exactly as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState, restrict_ego
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.ego_encoder import EGO_FEATURES, ego_features, kinematic_prior
from fastdrive_ros.nn.prompt import build_prompt
from fastdrive_ros.nn.vla import VLA, VLAConfig

torch.set_num_threads(2)


def _ego(speed=8.0, accel=-1.0, yaw_rate=0.1, command="left", bend=0.02) -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([speed * t, bend * t**2], axis=1),
        speed=speed,
        acceleration=accel,
        yaw_rate=yaw_rate,
        steering=0.05,
        command=command,
    )


def test_ctra_prior_against_hand_computed_values() -> None:
    # straight, braking to a stop at 5 s: x = v t + a t^2 / 2
    plan = kinematic_prior(_ego(speed=10.0, accel=-2.0, yaw_rate=0.0))
    t = np.arange(1, 7) * 0.5
    assert np.allclose(plan[:, 0], 10 * t - t**2, atol=1e-6) and np.allclose(plan[:, 1], 0)
    # stops at 1 s and stays there (speed never below zero)
    plan = kinematic_prior(_ego(speed=2.0, accel=-2.0, yaw_rate=0.0))
    assert np.allclose(plan[1:, 0], 1.0, atol=1e-6)
    # constant speed on a circle: x = v/w sin(w t), y = v/w (1 - cos(w t))
    plan = kinematic_prior(_ego(speed=5.0, accel=0.0, yaw_rate=0.2))
    assert np.allclose(plan[:, 0], 25 * np.sin(0.2 * t), atol=2e-3)
    assert np.allclose(plan[:, 1], 25 * (1 - np.cos(0.2 * t)), atol=2e-3)


def test_minimal_inputs_read_only_command_and_speed() -> None:
    a, b = _ego(accel=-3.0, yaw_rate=0.3, bend=0.5), _ego(accel=1.0, yaw_rate=-0.2, bend=0.0)
    assert not np.array_equal(ego_features(a), ego_features(b))
    ma, mb = restrict_ego(a, "minimal"), restrict_ego(b, "minimal")
    assert np.array_equal(ego_features(ma), ego_features(mb))
    assert ego_features(ma).shape == (EGO_FEATURES,) and ego_features(ma)[3] == 1.0
    assert not np.array_equal(
        ego_features(ma), ego_features(restrict_ego(_ego(command="right"), "minimal"))
    )
    # the minimal prior is constant velocity straight ahead
    t = np.arange(1, 7) * 0.5
    assert np.allclose(kinematic_prior(ma), np.stack([8.0 * t, 0 * t], axis=1))


@pytest.fixture(scope="module")
def numbers_vla() -> VLA:
    return VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=4).eval()


def _plan(vla: VLA, ego: EgoState, tokens: torch.Tensor) -> np.ndarray:
    grid = torch.tensor([[1, 4, 6]] * 2)
    result = vla.planner.plan(
        kept_tokens=tokens, kept_index=torch.arange(tokens.shape[0]), grid_thw=grid, ego=ego
    )
    return result.waypoints


def test_numbers_planner_prompt_prior_and_batch_agree(numbers_vla) -> None:
    planner = numbers_vla.planner
    ego = _ego()
    spec = build_prompt(ego, num_cameras=2, style="compact", ego_text=False)
    assert spec.texts[-1].endswith(" left<plan>") and "v8.0" not in spec.texts[-1]
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(0))
    one = _plan(numbers_vla, ego, tokens)
    with torch.no_grad():
        # a zeroed head leaves exactly the prior: the residual rides on top of CTRA / CV
        batch = planner.forward_regression(
            visual_tokens=[tokens, tokens[:5]],
            kept_index=[torch.arange(12), torch.arange(5)],
            grid_thw=torch.tensor([[1, 4, 6]] * 2),
            egos=[ego, restrict_ego(ego, "minimal")],
        )
    assert np.allclose(batch[0].numpy(), one, atol=1e-4)
    head = planner.waypoint_head.mlp[-1]
    saved = head.weight.detach().clone(), head.bias.detach().clone()
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    try:
        assert np.allclose(_plan(numbers_vla, ego, tokens), kinematic_prior(ego), atol=1e-5)
        minimal = restrict_ego(ego, "minimal")
        assert np.allclose(
            _plan(numbers_vla, minimal, tokens), kinematic_prior(minimal), atol=1e-5
        )
    finally:
        with torch.no_grad():
            head.weight.copy_(saved[0])
            head.bias.copy_(saved[1])
    # the status reaches the plan through the encoder: acceleration moves it in full mode only
    other = _ego(accel=2.0)
    assert not np.allclose(_plan(numbers_vla, other, tokens), one, atol=1e-4)
    assert np.allclose(
        _plan(numbers_vla, restrict_ego(other, "minimal"), tokens),
        _plan(numbers_vla, restrict_ego(ego, "minimal"), tokens),
        atol=1e-6,
    )


def test_a_fresh_residual_planner_starts_as_its_prior() -> None:
    # zero-initialised head: before training the plan IS the kinematic prior, whatever it sees
    vla = VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=9).eval()
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(1))
    for ego in (_ego(), restrict_ego(_ego(accel=1.5), "minimal")):
        assert np.allclose(_plan(vla, ego, tokens), kinematic_prior(ego), atol=1e-5)
    # an absolute head (no prior) keeps a random start: all-zero waypoints would be a stop
    absolute = VLA.build(tiny_config(cameras=2), seed=9).planner.waypoint_head.mlp[-1]
    assert float(absolute.weight.abs().sum()) > 0


def test_numbers_bundle_round_trip(numbers_vla, tmp_path) -> None:
    numbers_vla.save_pretrained(tmp_path / "b")
    again = VLA.from_pretrained(tmp_path / "b").eval()
    assert again.config.ego_encoder and again.config.waypoint_prior == "kinematic"
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(1))
    ego = _ego()
    assert np.allclose(_plan(again, ego, tokens), _plan(numbers_vla, ego, tokens), atol=1e-6)


def test_older_configs_keep_the_text_status_and_absolute_head() -> None:
    data = json.loads(tiny_config(cameras=2).to_json())
    del data["ego_encoder"], data["waypoint_prior"]  # a bundle saved before issue 8
    config = VLAConfig.from_json(json.dumps(data))
    assert not config.ego_encoder and config.waypoint_prior == "none"
    vla = VLA(config=config, tokenizer=VLA.build(config).tokenizer)
    assert vla.planner.ego_encoder is None and vla.planner.waypoint_prior == "none"
    spec = vla.planner._prompt(_ego(), 2)
    assert "v8.0 a-1.0 w0.10" in spec.texts[-1]
    with pytest.raises(ValueError, match="waypoint_prior"):
        VLAConfig.from_json(json.dumps({**data, "waypoint_prior": "ctra"}))
    with pytest.raises(ValueError, match="regression"):
        tiny_config(cameras=2, head="text").__class__.from_json(
            json.dumps(
                {**json.loads(tiny_config(head="text").to_json()), "waypoint_prior": "kinematic"}
            )
        )


def test_the_planners_prior_agrees_with_evals_ctra_reference() -> None:
    from fastdrive_ros.nn.ctra import ctra_plan

    for speed, accel, yaw_rate in ((8.0, -1.0, 0.1), (12.0, 0.5, -0.2), (3.0, -2.5, 0.3)):
        ego = _ego(speed=speed, accel=accel, yaw_rate=yaw_rate)
        assert np.abs(kinematic_prior(ego) - ctra_plan(ego)).max() < 0.03
        minimal = restrict_ego(ego, "minimal")
        assert np.abs(kinematic_prior(minimal) - ctra_plan(minimal)).max() < 1e-9


def test_eval_counts_the_prompt_the_numbers_planner_reads(tmp_path) -> None:
    # analytic FLOPs use text_tokens: with an EgoEncoder the prompt has no status digits
    from fastdrive_ros.eval.vla_adapter import VLAEvalModel

    VLA.build(tiny_config(ego_numbers=True), seed=2).save_pretrained(tmp_path / "m")
    model = VLAEvalModel.from_folder(tmp_path / "m")
    images = torch.randint(0, 255, (2, 90, 160, 3), dtype=torch.uint8)
    visual = model.encode(model.preprocess(images))
    out = model.vla.planner.plan_detailed(
        kept_tokens=visual.tokens[:9],
        kept_index=torch.arange(9),
        grid_thw=visual.grid_thw,
        ego=_ego(),
    )
    assert set(out.tokens_per_layer) == {9 + model.text_tokens(_ego())}
    digits = build_prompt(_ego(), num_cameras=2, style="compact", ego_text=True)
    assert model.text_tokens(_ego()) < sum(
        len(model.vla.tokenizer.encode(t)) for t in digits.texts
    )
