"""The embedded default in models/default: found, consistent with its ONNX graph, and it drives.

These guard the files the demo and the node load without arguments: a retrained bundle with a
stale export, a broken card or a planner that ignores the ego speed fails here, not in a car.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState, PlanOk
from fastdrive_ros.nn.decision_reader import DecisionReader
from fastdrive_ros.pipeline.factory import MODEL_DIR_ENV, resolve_model_dir
from fastdrive_ros.runtime.model_source import load_model_parts
from fastdrive_ros.runtime.parity import parity_inputs

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "default"
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def parts():
    return load_model_parts(SHIPPED)


@pytest.fixture(scope="module")
def road_pixels(parts) -> torch.Tensor:
    return torch.from_numpy(parity_inputs(parts.input_shape, seed=1)["road_scene"])


def test_the_default_is_what_an_empty_model_dir_resolves_to(monkeypatch) -> None:
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    assert resolve_model_dir("") == SHIPPED


def test_six_cameras_and_1080_tokens_as_the_card_says(parts) -> None:
    assert len(parts.camera_names) == 6 and parts.pruner is not None
    assert parts.tokens_per_camera * len(parts.camera_names) == 1080
    card = (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "**1080 visual tokens**" in card and "### Targets" in card


def test_the_default_plans_over_the_prior_its_read_decision_drives() -> None:
    # build stages 4c-4e: the decision reader's decision moves the plan through the prior
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["waypoint_prior"] == "kinematic_decision" and config["decision_reader"]
    assert set(config["decision_gains"]) == {"full", "minimal"}
    assert 0 < config["decision_gains"]["minimal"] <= 2
    card = (SHIPPED / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "| 4e prior |" in card and "pruned_reading --tower" in card  # how it was made
    # with the full status the prior is driven toward the pace its reader reads
    reader = DecisionReader.load(SHIPPED / "decision_reader.safetensors")
    assert reader.pace is not None and "--pace" in card


def test_shipped_onnx_is_exported_from_these_weights_and_matches_torch(parts, road_pixels) -> None:
    pytest.importorskip("onnxruntime")
    from fastdrive_ros.runtime.backend_select import expected_export
    from fastdrive_ros.runtime.onnx_meta import default_onnx_path, read_export
    from fastdrive_ros.runtime.ort_backend import OrtBackend
    from fastdrive_ros.runtime.torch_backend import TorchBackend

    info = read_export(
        default_onnx_path(SHIPPED, "reconpruner", parts.default_prune_ratio, "fp32")
    )
    plan = info.metadata.plan
    expected_export(info, parts, "reconpruner", plan)  # raises on other weights or budget
    reference = TorchBackend(
        parts=parts, selector=parts.pruner, keep=plan.selector_keep, device="cpu"
    ).run(road_pixels)
    with OrtBackend(onnx_path=info.path, threads=2) as ort:
        got = ort.run(road_pixels)
    assert got.kept_index.numel() == 540
    np.testing.assert_array_equal(reference.kept_index.numpy(), got.kept_index.numpy())
    assert float((reference.kept_tokens - got.kept_tokens).abs().max()) < 1e-3


def _straight(speed: float) -> EgoState:
    history = np.stack([np.arange(-3.0, 0.01, 0.5) * speed, np.zeros(7)], axis=1)
    return EgoState(history_xy=history, speed=speed, acceleration=0.0, yaw_rate=0.0, steering=0.0)


def test_planner_follows_the_ego_speed_on_a_straight_road(road_pixels) -> None:
    from fastdrive_ros.nn.vla import VLA

    vla = VLA.from_pretrained(SHIPPED)
    reach = {}
    for speed in (0.0, 10.0):
        result, selection, _ = vla.plan_frame(road_pixels, _straight(speed))
        assert isinstance(result, PlanOk), result
        assert selection.kept_index.numel() == 540 and np.isfinite(result.waypoints).all()
        reach[speed] = float(result.waypoints[-1, 0])
        assert abs(float(result.waypoints[-1, 1])) < 2.0, "a straight road stays in its lane"
    assert reach[0.0] < 3.0, f"standing still, it plans {reach[0.0]:.1f} m in 3 s"
    assert 20.0 < reach[10.0] < 40.0, f"at 10 m/s, it plans {reach[10.0]:.1f} m in 3 s"


def test_shipped_eval_has_every_method_and_the_reference(parts) -> None:
    results = json.loads((SHIPPED / "eval" / "results.json").read_text())
    methods = {(r["pruner"], r["prune_ratio"]) for r in results["records"]}
    for name in ("reconpruner", "fastv", "sparsevlm", "divprune", "vispruner", "random"):
        assert {(name, p) for p in (0.25, 0.5, 0.75)} <= methods
    assert [r["pruner"] for r in results["references"]][:1] == ["constant_velocity"]


def test_shipped_weights_match_their_recorded_hashes() -> None:
    """models/default carries SHA256SUMS (issue 11) and its files match it (no warning path)."""
    from fastdrive_ros.nn.integrity import read_manifest, sha256_of

    weights = {  # the decision reader drives the default's prior: its bytes are recorded too
        SHIPPED: {"model.safetensors", "decision_reader.safetensors"},
        SHIPPED / "pruner": {"reconpruner.safetensors"},
    }
    for folder, names in weights.items():
        recorded = read_manifest(folder)
        assert recorded is not None and set(recorded) == names
        for name in names:
            assert sha256_of(folder / name) == recorded[name], name
