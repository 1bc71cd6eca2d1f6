from __future__ import annotations

import pytest
import torch

from fastdrive_ros.core_types import CAMERA_NAMES, PlanOk
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.factory import PipelineParams, build_pipeline
from fastdrive_ros.pipeline.fakes import camera_frames, jpeg_bytes, sample_image, shared_tiny_model
from fastdrive_ros.pipeline.types import OdometryIn

MS = 1_000_000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("pruner", "kept"), [("reconpruner", 18), ("none", 36), ("fastv", 18)])
def test_built_pipeline_plans_a_frame(model_dir, pruner: str, kept: int) -> None:
    clock = ManualClock(1000 * MS)
    params = PipelineParams(
        model_dir=model_dir,
        backend="torch",
        pruner=pruner,
        prune_ratio=0.5,
        device="cpu",
        config=PipelineConfig(camera_period_ms=1e4),
    )
    pipeline = build_pipeline(params, clock=clock)
    assert pipeline.info.backend == "torch" and pipeline.info.pruner == pruner
    assert pipeline.image_size == (56, 84)
    pipeline.on_odometry(OdometryIn(1000 * MS, 0.0, 0.0, 0.0, 3.0, 0.0))
    # cameras send 160x90 JPEGs; the model sees 84x56 (nn.vision.preprocess_images)
    jpeg = jpeg_bytes(sample_image(160, 90))
    for frame in camera_frames(1000 * MS, camera_names=CAMERA_NAMES, data=jpeg):
        pipeline.on_camera(frame)
    out = pipeline.step()
    assert out is not None and isinstance(out.plan, PlanOk), out and out.plan
    assert out.total_tokens == 36 and out.kept_tokens == kept
    assert {"encode", "prune", "prefill", "plan", "total"} <= set(out.latency_ms)
    assert out.health.values["pruner"] == pruner
