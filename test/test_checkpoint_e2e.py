"""A tiny random Qwen2.5-VL checkpoint in HF layout through `fastdrive eval` and the node.

The checkpoint (test/hf_tiny.py) is what a user brings for Impromptu-VLA: config.json, sharded
safetensors with an index, tokenizer files. It must run with the text head (generate, parse
<PLANNING>), at the checkpoint's own resolution, in the LiDAR reference frame; its random answers
are typed failures that eval scores with the fallback and counts, and the node reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from hf_tiny import tiny_hf_checkpoint
from nusc_tiny import write_tiny_nuscenes
from typer.testing import CliRunner

from fastdrive_ros.core_types import CAMERA_NAMES, PlanFailure, PlanOk
from fastdrive_ros.eval.cli import register
from fastdrive_ros.pipeline.clock import ManualClock
from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.factory import PipelineParams, build_pipeline
from fastdrive_ros.pipeline.fakes import camera_frames, jpeg_bytes, sample_image
from fastdrive_ros.pipeline.types import OdometryIn

MS = 1_000_000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_hf_checkpoint(tmp_path_factory.mktemp("hf") / "Impromptu-tiny")


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fastdrive_eval_runs_a_checkpoint_with_the_text_head(checkpoint, tmp_path) -> None:
    data = write_tiny_nuscenes(tmp_path / "nusc", can_bus=True)
    out = tmp_path / "out"
    app = typer.Typer()
    register(app)
    args = ["eval", "--dataroot", str(data), "--version", "v1.0-tiny", "--model", str(checkpoint)]
    args += ["--out", str(out), "--split", "all", "--max-samples", "2", "--overlay-samples", "0"]
    args += ["--pruners", "fastv,sparsevlm,random", "--ratios", "0,0.5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    results = json.loads((out / "results.json").read_text())
    meta = results["metadata"]
    assert meta["cameras"] == ["CAM_FRONT"]
    assert meta["image_size"] == [392, 672] and meta["resize"] == "impromptu"
    assert meta["reference"] == "lidar"  # the frame Impromptu-VLA was trained in
    records = results["records"]
    assert {r["pruner"] for r in records} == {"none", "fastv", "sparsevlm", "random"}
    unpruned = [r for r in records if r["pruner"] == "none"][0]
    assert unpruned["total_tokens"] == 336 and unpruned["kept_tokens"] == 336
    pruned = [r for r in records if r["prune_ratio"] == 0.5]
    assert len(pruned) == 3 and all(r["kept_tokens"] == 168 for r in pruned)
    # random weights answer garbage: every plan is a typed failure, scored and counted
    assert all(r["samples"] == 2 and r["plan_failures"] == 2 for r in records)
    # the text head ran: decoding took time, each answer failed for a named reason
    assert all(r["decode_ms"] > 0 and sum(r["failure_reasons"].values()) == 2 for r in records)
    md = (out / "results.md").read_text()
    assert "Failed plans are scored with the constant-velocity plan" in md
    assert "'fastv@0.5': 2" in md.split("and counted: ")[1].split("\n")[0]
    assert "LiDAR sensor in the current LiDAR frame" in md


def test_the_node_pipeline_plans_with_a_checkpoint_and_the_text_head(checkpoint) -> None:
    clock = ManualClock(1000 * MS)
    params = PipelineParams(
        model_dir=checkpoint,
        backend="torch",
        pruner="fastv",
        prune_ratio=0.5,
        device="cpu",
        warm_up=False,
        config=PipelineConfig(camera_names=CAMERA_NAMES[:1], camera_period_ms=1e4),
    )
    pipeline = build_pipeline(params, clock=clock)
    assert pipeline.image_size == (392, 672)
    pipeline.on_odometry(OdometryIn(1000 * MS, 0.0, 0.0, 0.0, 3.0, 0.0))
    jpeg = jpeg_bytes(sample_image(1600, 900))
    for frame in camera_frames(1000 * MS, camera_names=CAMERA_NAMES[:1], data=jpeg):
        pipeline.on_camera(frame)
    out = pipeline.step()
    assert out is not None
    assert out.total_tokens == 336 and out.kept_tokens == 168
    assert isinstance(out.plan, (PlanOk, PlanFailure))
    if isinstance(out.plan, PlanFailure):  # random weights: no <PLANNING> answer
        assert out.plan.reason in ("unparseable", "no_answer", "wrong_count")
    assert {"encode", "prefill", "plan", "total"} <= set(out.latency_ms)
    assert out.latency_ms["decode_tokens"] > 0  # the text head generated tokens
