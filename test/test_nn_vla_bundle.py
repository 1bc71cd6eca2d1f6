"""The VLA bundle: save/load round trip, every selector through plan_frame, clear file errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState, PlanFailure, PlanOk
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.registry import SELECTOR_NAMES
from fastdrive_ros.nn.selection import keep_count
from fastdrive_ros.nn.vla import VLA, VLAConfig

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def vla() -> VLA:
    return VLA.build(tiny_config(cameras=2), seed=3)


@pytest.fixture(scope="module")
def bundle(vla, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    vla.save_pretrained(folder)
    return folder


def _ego() -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([4.0 * t, 0 * t], axis=1),
        speed=4.0,
        acceleration=0.1,
        yaw_rate=0.0,
        steering=0.0,
        command="left",
    )


def _pixels(cameras: int = 2) -> torch.Tensor:
    return torch.randn(cameras, 3, 56, 84, generator=torch.Generator().manual_seed(0))


def test_round_trip_gives_the_same_plans(vla, bundle) -> None:
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["SHA256SUMS", "config.json", "model.safetensors", "pruner", "tokenizer.json"]
    assert not list(bundle.rglob("*.bin")) and not list(bundle.rglob("*.pt"))
    loaded = VLA.from_pretrained(bundle)
    assert loaded.config.image_size == (56, 84) and loaded.config.head == "regression"
    for name in ("reconpruner", "none"):
        a, sel_a, _ = vla.plan_frame(_pixels(), _ego(), selector_name=name, prune_ratio=0.5)
        b, sel_b, _ = loaded.plan_frame(_pixels(), _ego(), selector_name=name, prune_ratio=0.5)
        assert isinstance(a, PlanOk) and isinstance(b, PlanOk)
        np.testing.assert_array_equal(a.waypoints, b.waypoints)
        assert torch.equal(sel_a.kept_index, sel_b.kept_index)
    # the tied lm_head is stored once and re-tied on load
    assert loaded.planner.lm_head.weight is loaded.planner.model.embed_tokens.weight


@pytest.mark.parametrize("name", SELECTOR_NAMES)
def test_every_selector_plans_a_frame(vla, name) -> None:
    result, selection, timings = vla.plan_frame(
        _pixels(), _ego(), selector_name=name, prune_ratio=0.75
    )
    assert isinstance(result, PlanOk)
    n = 2 * 6
    assert selection.kept_index.numel() == (n if name == "none" else keep_count(n, 0.75))
    assert {"encode", "prune", "prefill", "decode"} <= set(timings)


def test_text_head_on_random_weights_is_a_typed_failure() -> None:
    vla = VLA.build(tiny_config(cameras=1, head="text", pruner=False))
    result, selection, timings = vla.plan_frame(
        _pixels(1), _ego(), selector_name="none", max_new_tokens=8
    )
    assert isinstance(result, PlanFailure)
    assert timings["decode"] >= 0 and selection.kept_index.numel() == 6
    with pytest.raises(ValueError, match="no ReconPruner"):
        vla.plan_frame(_pixels(1), _ego(), selector_name="reconpruner")


def _copy(bundle, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(bundle, folder)
    return folder


def test_missing_and_broken_files_are_named(bundle, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        VLA.from_pretrained(tmp_path / "nothing")
    folder = _copy(bundle, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="model.safetensors.*corrupt"):
        VLA.from_pretrained(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        VLA.from_pretrained(folder)
    shutil.rmtree(folder)
    folder = _copy(bundle, tmp_path)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        VLA.from_pretrained(folder)
    shutil.rmtree(folder)
    folder = _copy(bundle, tmp_path)
    shutil.rmtree(folder / "pruner")
    with pytest.raises(FileNotFoundError, match="pruner"):
        VLA.from_pretrained(folder)


def test_config_mismatches_are_explained(bundle, tmp_path) -> None:
    folder = _copy(bundle, tmp_path)
    raw = json.loads((folder / "config.json").read_text())
    text = raw["qwen"]  # flat, as Qwen2.5-VL checkpoints ship it
    text["num_hidden_layers"] = 4
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="does not match config.json"):
        VLA.from_pretrained(folder)
    text["num_hidden_layers"], text["intermediate_size"] = 3, 96
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="does not fit config.json"):
        VLA.from_pretrained(folder)
    text["num_hidden_layers"], text["vision_config"] = 3, "not a dict"
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="not a valid Qwen2_5_VLConfig"):
        VLA.from_pretrained(folder)
    raw["version"] = 99
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="version 99"):
        VLA.from_pretrained(folder)
    (folder / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="JSON"):
        VLA.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="neither"):
        VLA.from_pretrained(folder)


def test_config_json_round_trip_and_validation() -> None:
    config = tiny_config(cameras=2)
    again = VLAConfig.from_json(config.to_json())
    assert again.to_json() == config.to_json() and again.image_size == (56, 84)
    base = json.loads(config.to_json())
    del base["format"], base["version"]
    cases = {
        "multiples of 28": {"image_size": [50, 84]},
        "CAMERA_NAMES order": {"camera_names": ["CAM_FRONT_RIGHT", "CAM_FRONT"]},
        "distinct names": {"camera_names": ["CAM_TOP"]},
        "FRONT alone or all six": {"prompt_style": "impromptu", "head": "text"},
        "regression head reads": {"prompt_style": "impromptu", "camera_names": ["CAM_FRONT"]},
        "pruner hidden_size": {"pruner": dict(base["pruner"], hidden_size=32)},
        "default_prune_ratio": {"default_prune_ratio": 1.0},
        "tokenizer kind": {"tokenizer": {"kind": "sentencepiece"}},
    }
    for needle, change in cases.items():
        with pytest.raises(ValueError, match=needle):
            VLAConfig(**{**base, **change})
    with pytest.raises(ValueError, match="unknown VLAConfig fields"):
        VLAConfig.from_json(json.dumps({"format": "fastdrive_ros.vla", "version": 1, "x": 1}))


def test_saved_config_follows_the_attached_pruner(tmp_path) -> None:
    from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig

    vla = VLA.build(tiny_config(cameras=1, pruner=False))
    vla.pruner = ReconPruner(
        config=ReconPrunerConfig(
            hidden_size=64,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=96,
            budget="per_camera",
        )
    )
    vla.save_pretrained(tmp_path)
    loaded = VLA.from_pretrained(tmp_path)
    assert loaded.pruner is not None and loaded.pruner.config.budget == "per_camera"
    assert loaded.config.pruner["intermediate_size"] == 96
