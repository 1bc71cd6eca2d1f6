"""A planner whose residual rides on the ego-only reference MLPs (waypoint_prior "ego_mlp")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from train_tiny import VERSION, tiny_world
from typer.testing import CliRunner

from fastdrive_ros.core_types import EgoState, restrict_ego
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.ego_encoder import kinematic_prior
from fastdrive_ros.nn.ego_mlp import EgoMLP, EgoPrior, ego_mlp_path
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.cli import register

torch.set_num_threads(2)
GRID = torch.tensor([[1, 4, 6]] * 2)


def _ego(speed: float = 7.0, accel: float = -1.5, command: str = "right") -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([speed * t, 0.03 * t**2], axis=1),
        speed=speed,
        acceleration=accel,
        yaw_rate=-0.05,
        steering=-0.02,
        command=command,
    )


def _bundle(folder: Path, *, cameras: int = 2, seed: int = 3) -> Path:
    """A tiny kinematic-prior VLA with (untrained, so non-zero) ego MLPs of both settings."""
    VLA.build(tiny_config(cameras=cameras, ego_numbers=True), seed=seed).save_pretrained(folder)
    torch.manual_seed(seed)
    for inputs in ("full", "minimal"):
        EgoMLP(inputs).save(ego_mlp_path(folder, inputs))
    return folder


def _plan(vla: VLA, ego: EgoState, tokens: torch.Tensor) -> np.ndarray:
    index = torch.arange(tokens.shape[0])
    return vla.planner.plan(kept_tokens=tokens, kept_index=index, grid_thw=GRID, ego=ego).waypoints


def test_the_planner_starts_as_the_ego_mlp_and_only_its_head_learns(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b")
    vla = VLA.from_pretrained(bundle).eval()
    vla.use_ego_mlp_prior(bundle)
    assert vla.config.waypoint_prior == "ego_mlp"
    tokens = torch.randn(12, 64, generator=torch.Generator().manual_seed(0))
    for ego in (_ego(), restrict_ego(_ego(accel=1.0), "minimal")):
        mlp = EgoMLP.load(ego_mlp_path(bundle, ego.inputs))
        plan = _plan(vla, ego, tokens)
        np.testing.assert_allclose(plan, mlp.plan(ego), atol=1e-4)  # whatever the tokens say
        assert not np.allclose(plan, kinematic_prior(ego), atol=1e-2)  # not the CTRA prior
    # the prior is frozen inside the planner; its head and LLM are what training moves
    prior = vla.planner.ego_prior
    assert prior is not None and not any(p.requires_grad for p in prior.parameters())
    out = vla.planner.forward_regression(
        visual_tokens=[tokens], kept_index=[torch.arange(12)], grid_thw=GRID, egos=[_ego()]
    )
    out.sum().backward()
    assert vla.planner.waypoint_head.mlp[-1].weight.grad.abs().sum() > 0
    # saved and loaded, the prior's weights travel inside the bundle
    vla.save_pretrained(tmp_path / "saved")
    again = VLA.from_pretrained(tmp_path / "saved").eval()
    assert again.config.waypoint_prior == "ego_mlp"
    np.testing.assert_allclose(_plan(again, _ego(), tokens), _plan(vla, _ego(), tokens), atol=1e-6)


def test_an_ego_mlp_prior_needs_the_mlps_and_a_residual_head(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    VLA.build(tiny_config(cameras=2, ego_numbers=True), seed=1).save_pretrained(bare)
    with pytest.raises(FileNotFoundError, match="train-ego-mlp"):
        VLA.from_pretrained(bare).use_ego_mlp_prior(bare)
    absolute = VLA.build(tiny_config(cameras=2), seed=1)  # absolute waypoints, no prior
    with pytest.raises(ValueError, match="has none"):
        absolute.use_ego_mlp_prior(_bundle(tmp_path / "mlps"))
    EgoMLP("full", hidden=16).save(ego_mlp_path(tmp_path / "mlps", "full"))
    with pytest.raises(ValueError, match="128 wide, these are \\[16, 128\\].*--hidden 128"):
        EgoPrior.from_bundle(tmp_path / "mlps")


@pytest.mark.slow
def test_train_planner_learns_a_residual_over_the_ego_mlps(tmp_path_factory) -> None:
    world = tiny_world(tmp_path_factory)
    bundle = _bundle(tmp_path_factory.mktemp("start") / "b", cameras=6)
    out = tmp_path_factory.mktemp("trained")
    app = typer.Typer()
    register(app)
    args = ["train-planner", "--model", str(bundle), "--dataroot", str(world)]
    # all three scenes: the cross-fitted prior needs a scene per fold
    args += ["--version", VERSION, "--split", "all", "--val-split", "val"]
    args += ["--out", str(out), "--device", "cpu", "--no-progress", "--seed", "1"]
    args += ["--epochs", "1", "--batch-size", "4", "--warmup-steps", "1", "--ego-mlp-prior"]
    too_many = CliRunner().invoke(app, [*args, "--prior-folds", "99"])
    assert too_many.exit_code == 2 and "--prior-folds 99: need 2 <= folds" in too_many.output
    result = CliRunner().invoke(app, [*args, "--prior-folds", "2"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "ego-MLP prior cross-fitted over 2 folds of scenes" in result.output
    trained = VLA.from_pretrained(out / "model")
    assert trained.config.waypoint_prior == "ego_mlp"
    assert trained.planner.waypoint_head.mlp[-1].weight.abs().sum() > 0  # it learned a residual
    for inputs in ("full", "minimal"):  # the prior came along unchanged, for the eval's reference
        saved = ego_mlp_path(out / "model", inputs)
        assert saved.read_bytes() == ego_mlp_path(bundle, inputs).read_bytes()
        for key, value in EgoMLP.load(saved).state_dict().items():
            torch.testing.assert_close(
                trained.planner.ego_prior.mlps[inputs].state_dict()[key], value
            )
