"""The evaluation probes behind the selection interface, and the shuffled probe's scene pairing."""

from __future__ import annotations

import pytest
import torch

from fastdrive_ros.eval.pairing import partner_indices, scene_pairing
from fastdrive_ros.nn.probes import AntiOracle, NoImages, OracleForeground, ShuffledScene
from fastdrive_ros.nn.registry import (
    EVAL_SELECTOR_NAMES,
    PROBE_NAMES,
    SELECTOR_NAMES,
    make_selector,
    selector_stage,
)
from fastdrive_ros.nn.selection import VisualTokens, per_camera_keep


def _visual(share: list[float], cameras: int = 1, **aux: torch.Tensor) -> VisualTokens:
    n = len(share)
    per = n // cameras
    grid = torch.tensor([[1, 2, 2 * per]] * cameras)  # per camera: 1 x (2 x 2 per) patches
    return VisualTokens(
        tokens=torch.arange(n * 4, dtype=torch.float32).view(n, 4),
        grid_thw=grid,
        aux={"fg_share": torch.tensor(share), **aux},
    )


def test_oracle_keeps_the_highest_share_and_anti_oracle_the_lowest() -> None:
    share = [0.1, 0.9, 0.0, 0.5, 0.7, 0.2, 1.0, 0.3]
    visual = _visual(share)
    top = OracleForeground().select(visual, 3).kept_index.tolist()
    low = AntiOracle().select(visual, 3).kept_index.tolist()
    assert top == [1, 4, 6]  # 0.9, 0.7, 1.0, in original (ascending) order
    assert low == [0, 2, 5]  # 0.1, 0.0, 0.2
    assert not set(top) & set(low)


def test_oracle_ties_are_broken_by_index_and_per_camera_budgets_hold() -> None:
    share = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.5]  # two cameras of four tokens
    visual = _visual(share, cameras=2)
    # ties at 0.0 go to the lowest index: the same frame always keeps the same tokens
    assert AntiOracle().select(visual, 2).kept_index.tolist() == [0, 1]
    budgets = per_camera_keep(visual.tokens_per_camera, 0.5)  # [2, 2]
    kept = OracleForeground().select(visual, budgets).kept_index.tolist()
    assert kept == [0, 1, 4, 6]  # camera 0: all equal -> first two; camera 1: 1.0 and 0.5 (first)


def test_oracle_without_masks_is_a_clear_error() -> None:
    visual = VisualTokens(tokens=torch.zeros(4, 2), grid_thw=torch.tensor([[1, 2, 8]]))
    with pytest.raises(ValueError, match="foreground share.*fastdrive masks"):
        OracleForeground().select(visual, 2)
    bad = _visual([0.1, float("nan"), 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        AntiOracle().select(bad, 2)


def test_shuffled_hands_over_the_partner_tokens_at_every_position() -> None:
    partner = torch.full((4, 4), 7.0)
    visual = _visual([0.0] * 4, partner_tokens=partner)
    selection = ShuffledScene().select(visual, 4)
    assert selection.kept_index.tolist() == [0, 1, 2, 3]
    assert torch.equal(selection.tokens, partner)
    with pytest.raises(ValueError, match="ratio 0 only"):
        ShuffledScene().select(visual, 2)
    with pytest.raises(ValueError, match="another scene"):
        ShuffledScene().select(_visual([0.0] * 4), 4)
    with pytest.raises(ValueError, match="do not match"):
        ShuffledScene().select(_visual([0.0] * 4, partner_tokens=torch.zeros(3, 4)), 4)


def test_no_images_gives_zero_tokens() -> None:
    visual = _visual([0.0] * 4)
    selection = NoImages().select(visual, 4)
    assert selection.kept_index.numel() == 0 and selection.kept_index.dtype == torch.long
    with pytest.raises(ValueError, match="ratio 0 only"):
        NoImages().select(visual, 3)


def test_registry_lists_probes_for_eval_but_not_for_the_node() -> None:
    assert set(PROBE_NAMES) == {"oracle_fg", "anti_oracle", "shuffled", "no_images"}
    assert not set(PROBE_NAMES) & set(SELECTOR_NAMES)
    assert EVAL_SELECTOR_NAMES == SELECTOR_NAMES + PROBE_NAMES
    assert isinstance(make_selector("oracle_fg"), OracleForeground)
    assert isinstance(make_selector("no_images"), NoImages)
    # the node and the export ask for a stage without probes: a probe fails there at start-up
    with pytest.raises(ValueError, match="evaluation probe.*fastdrive eval"):
        selector_stage("oracle_fg")
    assert selector_stage("shuffled", probes=True) == "encoder"
    assert selector_stage("reconpruner") == "encoder"


def test_pairing_never_pairs_a_scene_with_itself_and_is_deterministic() -> None:
    for n in range(2, 12):
        scenes = [f"scene-{i:04d}" for i in range(n)]
        for seed in range(20):
            pairing = scene_pairing(scenes, seed)
            assert set(pairing) == set(scenes) and set(pairing.values()) == set(scenes)
            assert all(a != b for a, b in pairing.items())
            assert pairing == scene_pairing(list(reversed(scenes)), seed)  # order-free
    scenes = [f"s{i}" for i in range(8)]
    assert len({tuple(sorted(scene_pairing(scenes, s).items())) for s in range(10)}) > 1


def test_partner_indices_cross_scenes_with_unequal_scene_sizes() -> None:
    scenes = ["a", "a", "a", "b", "c", "c"]
    for seed in range(10):
        partners = partner_indices(scenes, seed)
        assert partners == partner_indices(scenes, seed)
        assert all(scenes[i] != scenes[j] for i, j in enumerate(partners))
    with pytest.raises(ValueError, match="at least two scenes"):
        partner_indices(["a", "a"], 0)


def test_eval_help_lists_every_selector_and_probe() -> None:
    from typer.testing import CliRunner

    from fastdrive_ros.cli import build_app

    result = CliRunner().invoke(build_app(), ["eval", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for name in EVAL_SELECTOR_NAMES:
        assert name in result.output, name
    assert "--ego-inputs" in result.output
    args = ["eval", "--dataroot", "x", "--version", "v", "--model", "m", "--out", "o"]
    bad = CliRunner().invoke(build_app(), [*args, "--ego-inputs", "some"])
    assert bad.exit_code == 2 and "full, minimal" in bad.output
