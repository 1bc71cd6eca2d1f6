"""`fastdrive train-planner` and `fastdrive train-pruner` end to end on a tiny synthetic world."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from safetensors.torch import load_file
from train_tiny import VERSION, tiny_bundle
from typer.testing import CliRunner

from fastdrive_ros.core_types import CAMERA_NAMES, EgoState
from fastdrive_ros.nn.recon_pruner import ReconPruner
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.cli import register


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory)


def _invoke(args: list[str]):
    app = typer.Typer()
    register(app)
    torch.set_num_threads(1)
    return CliRunner().invoke(app, args)


def _common(world: Path, bundle: Path, out: Path) -> list[str]:
    return [
        *("--model", str(bundle), "--dataroot", str(world), "--version", VERSION),
        *("--split", "train", "--val-split", "val", "--out", str(out)),
        *("--threads", "1", "--device", "cpu", "--no-progress"),
    ]


@pytest.fixture(scope="module")
def planner_run(world: Path, bundle: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planner")
    args = ["train-planner", *_common(world, bundle, out)]
    args += ["--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--warmup-steps", "1"]
    args += ["--text-epochs", "2", "--text-batch-size", "4"]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "wrote the trained bundle" in result.output
    return out


def test_train_planner_writes_a_trained_bundle(planner_run: Path, bundle: Path) -> None:
    trained = VLA.from_pretrained(planner_run / "model")
    start = VLA.from_pretrained(bundle)
    changed = [
        k
        for k, v in trained.planner.state_dict().items()
        if not torch.equal(v, start.planner.state_dict()[k])
    ]
    assert changed, "the planner did not change"
    for key, value in trained.vision.state_dict().items():  # the tower stays frozen
        assert torch.equal(value, start.vision.state_dict()[key]), key
    summary = json.loads((planner_run / "summary.json").read_text())
    assert summary["text"]["steps"] > 0 and summary["full"]["steps"] > 0
    last = summary["full"]["last_val"]
    assert last["val_l2_avg"] > 0 and last["val_cv_l2_avg"] > 0
    ego = EgoState(
        history_xy=np.zeros((7, 2)), speed=3.0, acceleration=0.0, yaw_rate=0.0, steering=0.0
    )
    result, _, _ = trained.plan_frame(
        torch.zeros(6, 3, 56, 84), ego, selector_name="none", prune_ratio=0.0
    )
    assert result.waypoints.shape == (6, 2)


def test_train_planner_resumes_instead_of_retraining(
    planner_run: Path, world: Path, bundle: Path
) -> None:
    before = load_file(str(planner_run / "run" / "full" / "last" / "model.safetensors"))
    args = ["train-planner", *_common(world, bundle, planner_run)]
    args += ["--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--warmup-steps", "1"]
    args += ["--text-epochs", "2", "--text-batch-size", "4"]
    result = _invoke(args)
    assert result.exit_code == 0, result.output
    after = load_file(str(planner_run / "run" / "full" / "last" / "model.safetensors"))
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_train_pruner_trains_and_installs(world: Path, bundle: Path, tmp_path: Path) -> None:
    model = tmp_path / "bundle"
    shutil.copytree(bundle, model)
    out = tmp_path / "out"
    args = ["train-pruner", *_common(world, model, out)]
    args += ["--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--decoder-layers", "1"]
    args += ["--decoder-width", "32", "--install", "--decoder-warmup-steps", "2"]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert (out / "run" / "decoder_warmup" / "last" / "model.safetensors").is_file()
    pruner = ReconPruner.load(out / "pruner", expected_width=64)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] > 0 and summary["decoder"]["num_layers"] == 1
    for pct in (25, 50, 75):
        assert 0 <= summary["last_val"][f"val_fg_recall_p{pct}"] <= 1
    installed = VLA.from_pretrained(model).pruner
    for key, value in pruner.state_dict().items():
        assert torch.equal(value, installed.state_dict()[key]), key


def test_train_pruner_without_a_cache_encodes_on_the_fly(
    world: Path, bundle: Path, tmp_path: Path
) -> None:
    args = ["train-pruner", *_common(world, bundle, tmp_path), "--no-cache"]
    args += ["--epochs", "1", "--batch-size", "4", "--decoder-layers", "1"]
    args += ["--cameras", "CAM_FRONT,CAM_BACK"]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert not (tmp_path / "work" / "cache").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cameras"] == [CAMERA_NAMES[0], CAMERA_NAMES[3]]
    # defaults: the decoder warm-up runs (the working setting), width = the token width D
    assert (tmp_path / "run" / "decoder_warmup" / "last" / "model.safetensors").is_file()
    assert summary["decoder"]["width"] == 64


def test_train_pruner_defaults_are_the_working_and_the_paper_settings() -> None:
    import inspect

    from fastdrive_ros.train.cli import train_pruner_command
    from fastdrive_ros.train.pruner import DEFAULT_DECODER_WARMUP_STEPS
    from fastdrive_ros.train.pruner_job import PrunerJob, decoder_width

    params = inspect.signature(train_pruner_command).parameters
    assert params["decoder_warmup_steps"].default == DEFAULT_DECODER_WARMUP_STEPS == 150
    assert PrunerJob.__dataclass_fields__["decoder_warmup_steps"].default == 150
    assert params["decoder_layers"].default == 6
    assert decoder_width(None, 2048) == 2048 and decoder_width(256, 2048) == 256
    assert params["min_kept_fraction"].default > 0  # the guard is on by default


def test_train_pruner_stops_a_collapsed_run_with_a_named_remedy(
    world: Path, bundle: Path, tmp_path: Path
) -> None:
    # a threshold no untrained pruner reaches makes the guard fire on the first step
    args = ["train-pruner", *_common(world, bundle, tmp_path)]
    args += ["--epochs", "1", "--batch-size", "4", "--decoder-layers", "1"]
    args += ["--decoder-width", "32", "--decoder-warmup-steps", "0"]
    args += ["--min-kept-fraction", "0.999", "--collapse-patience", "1"]
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    assert "collapsed" in result.output and "--decoder-warmup-steps" in result.output
    assert not (tmp_path / "pruner").exists()


def test_bad_arguments_are_named(world: Path, tmp_path: Path) -> None:
    result = _invoke(["train-pruner", *_common(world, tmp_path / "nope", tmp_path)])
    assert result.exit_code == 2 and "config.json is missing" in result.output
    result = _invoke(
        ["train-pruner", *_common(world, tmp_path, tmp_path), "--image-size", "56by84"]
    )
    assert result.exit_code == 2 and "WIDTHxHEIGHT" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_train_pruner_under_torchrun_two_processes(
    world: Path, bundle: Path, tmp_path: Path, loopback_netns
) -> None:
    """Two Gloo processes (what `torchrun --nproc_per_node N` does on GPUs with NCCL)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        "-m",
        "fastdrive_ros.cli",
        "train-pruner",
        *_common(world, bundle, tmp_path),
        *("--epochs", "1", "--batch-size", "2", "--decoder-layers", "1", "--decoder-width", "32"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (tmp_path / "pruner" / "reconpruner.safetensors").is_file()
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file()


def test_train_pruner_reads_a_hf_checkpoint_folder(world: Path, bundle: Path, tmp_path: Path):
    """The real-scale path: vision weights from a Qwen2.5-VL checkpoint ('model.visual.*')."""
    from safetensors.torch import save_file

    vla = VLA.from_pretrained(bundle)
    checkpoint = tmp_path / "qwen"
    checkpoint.mkdir()
    flat = dict(vla.config.qwen)
    (checkpoint / "config.json").write_text(json.dumps(flat))
    tower = {f"model.visual.{k}": v.contiguous() for k, v in vla.vision.tower.state_dict().items()}
    save_file(tower, str(checkpoint / "model.safetensors"))
    out = tmp_path / "out"
    args = ["train-pruner", *_common(world, checkpoint, out), "--image-size", "84x56"]  # WxH
    args += [
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--decoder-layers",
        "1",
        "--decoder-width",
        "32",
    ]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"] == ["CAM_FRONT"] and summary["image_size"] == [56, 84]
    pruner = ReconPruner.load(out / "pruner", expected_width=64)
    assert pruner.config.hidden_size == 64
    result = _invoke(["train-pruner", *_common(world, checkpoint, out), "--install"])
    assert result.exit_code == 2 and "our bundles only" in result.output


def test_train_pruner_on_a_checkpoint_uses_its_own_resolution(world: Path, tmp_path: Path) -> None:
    from hf_tiny import tiny_hf_checkpoint

    checkpoint = tiny_hf_checkpoint(tmp_path / "ckpt")
    args = ["train-pruner", *_common(world, checkpoint, tmp_path / "out")]
    args += ["--epochs", "1", "--batch-size", "4", "--decoder-layers", "1"]
    args += ["--decoder-warmup-steps", "1", "--max-train-images", "8", "--max-val-images", "4"]
    result = _invoke(args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["image_size"] == [392, 672] and summary["resize"] == "impromptu"
    assert summary["cameras"] == ["CAM_FRONT"]
    manifests = list((tmp_path / "out" / "work" / "cache").rglob("cache.json"))
    assert manifests and all(json.loads(m.read_text())["resize"] == "impromptu" for m in manifests)
