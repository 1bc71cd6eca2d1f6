"""The whole pipeline on the onnxruntime backend plans a frame as it does on torch (same K tokens).

build_pipeline is run twice on one tiny bundle with its exported graph; the same JPEG frame goes
through decode, preprocess, encoder+pruner and planner, so any backend-dependent step on the
path (device, dtype, layout of the pixels handed over) would show as other kept tokens.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import CAMERA_NAMES, PlanOk
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.factory import PipelineParams, build_pipeline
from fastdrive_ros.pipeline.fakes import camera_frames, jpeg_bytes, sample_image, shared_tiny_model
from fastdrive_ros.pipeline.types import OdometryIn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
MS = 1_000_000
RATIO = 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A copy of the tiny bundle with its graph at the default ONNX path (the shared one stays
    without, as other tests expect)."""
    from fastdrive_ros.runtime.model_source import load_model_parts
    from fastdrive_ros.runtime.onnx_export import export_encoder_pruner
    from fastdrive_ros.runtime.onnx_meta import default_onnx_path

    folder = tmp_path_factory.mktemp("backends") / "tiny_vla"
    shutil.copytree(shared_tiny_model(tmp_path_factory.getbasetemp()), folder)
    parts = load_model_parts(folder)
    out = default_onnx_path(folder, "reconpruner", RATIO)
    export_encoder_pruner(parts, out, prune_ratio=RATIO)
    return folder


@pytest.fixture(autouse=True)
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _plan_one_frame(model_dir, backend: str):
    params = PipelineParams(
        model_dir=model_dir,
        backend=backend,
        pruner="reconpruner",
        prune_ratio=RATIO,
        device="cpu",
        warm_up=False,
        config=PipelineConfig(camera_period_ms=1e4),
    )
    pipeline = build_pipeline(params, clock=ManualClock(1000 * MS))
    assert pipeline.info.backend == backend
    pipeline.on_odometry(OdometryIn(1000 * MS, 0.0, 0.0, 0.0, 4.0, 0.05))
    jpeg = jpeg_bytes(sample_image(160, 90, seed=7))
    for frame in camera_frames(1000 * MS, camera_names=CAMERA_NAMES, data=jpeg):
        pipeline.on_camera(frame)
    out = pipeline.step()
    pipeline.close()
    assert out is not None and isinstance(out.plan, PlanOk), out and out.plan
    return out


def test_onnxruntime_and_torch_keep_the_same_tokens_and_plan_alike(model_dir) -> None:
    reference = _plan_one_frame(model_dir, "torch")
    ort = _plan_one_frame(model_dir, "onnxruntime")
    assert ort.total_tokens == reference.total_tokens == 36
    assert ort.kept_tokens == reference.kept_tokens == 18
    np.testing.assert_array_equal(ort.kept_index, reference.kept_index)
    np.testing.assert_allclose(ort.scores, reference.scores, atol=1e-5)
    np.testing.assert_allclose(ort.plan.waypoints, reference.plan.waypoints, atol=1e-4)
    assert {"encode_prune", "prefill"} <= set(ort.latency_ms)
    assert {"encode", "prune", "prefill"} <= set(reference.latency_ms)
