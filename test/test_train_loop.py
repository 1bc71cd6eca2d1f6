"""The shared training loop: learns, checkpoints without pickle, resumes exactly, runs DDP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from fastdrive_ros.train.checkpoint import CheckpointError, load_checkpoint
from fastdrive_ros.train.loop import TrainConfig, Trainer, cosine_with_warmup

HERE = Path(__file__).parent


def _problem(seed: int = 0) -> tuple[torch.nn.Module, TensorDataset, TensorDataset]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    return model, TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])


def _mse(model: torch.nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    return loss, {"abs_err": float((model(x) - y).abs().mean().detach())}


CONFIG = TrainConfig(epochs=4, batch_size=16, lr=3e-2, warmup_steps=2, ckpt_every=1, seed=3)


def test_training_lowers_the_loss_and_writes_checkpoints(tmp_path: Path) -> None:
    model, train, val = _problem()
    trainer = Trainer(
        model=model,
        loss_fn=_mse,
        train_set=train,
        val_set=val,
        config=CONFIG,
        out_dir=tmp_path,
        progress=False,
    )
    before = trainer.validate()["val_loss"]
    summary = trainer.fit()
    assert summary.steps == 4 * 5 and summary.epochs == 4
    assert summary.best_val < 0.5 * before
    assert (tmp_path / "last" / "model.safetensors").is_file()
    assert (tmp_path / "best" / "state.json").is_file()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) >= 20


def test_resume_after_a_crash_gives_the_same_weights(tmp_path: Path) -> None:
    model, train, val = _problem()
    reference = Trainer(
        model=model,
        loss_fn=_mse,
        train_set=train,
        val_set=val,
        config=CONFIG,
        out_dir=tmp_path / "ref",
        progress=False,
    )
    reference.fit()

    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 13:  # mid-epoch 3
            raise KeyboardInterrupt
        return _mse(model, batch)

    model, train, val = _problem()
    interrupted = Trainer(
        model=model,
        loss_fn=crashing,
        train_set=train,
        val_set=None,
        config=CONFIG,
        out_dir=tmp_path / "run",
        progress=False,
    )
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    model, train, val = _problem()
    torch.nn.init.normal_(model[0].weight)  # a different init: all must come from the checkpoint
    resumed = Trainer(
        model=model,
        loss_fn=_mse,
        train_set=train,
        val_set=None,
        config=CONFIG,
        out_dir=tmp_path / "run",
        progress=False,
    )
    summary = resumed.fit()
    assert summary.steps == reference.state.step
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_checkpoint_for_another_model_is_refused(tmp_path: Path) -> None:
    model, train, val = _problem()
    Trainer(
        model=model,
        loss_fn=_mse,
        train_set=train,
        val_set=None,
        config=TrainConfig(epochs=1, batch_size=40),
        out_dir=tmp_path,
        progress=False,
    ).fit()
    other = torch.nn.Linear(4, 1)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_checkpoint(tmp_path / "last", model=other)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "nothing", model=other)


def test_nan_loss_stops_with_a_clear_error(tmp_path: Path) -> None:
    model, train, _ = _problem()

    def nan_loss(model, batch):
        return model(batch[0]).sum() * float("nan"), {}

    trainer = Trainer(
        model=model,
        loss_fn=nan_loss,
        train_set=train,
        val_set=None,
        config=TrainConfig(epochs=1),
        out_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(FloatingPointError, match="lower --lr"):
        trainer.fit()


def test_cosine_schedule_warms_up_then_decays() -> None:
    factor = cosine_with_warmup(total_steps=10, warmup_steps=2, min_ratio=0.1)
    values = [factor(s) for s in range(11)]
    assert values[0] == pytest.approx(0.5) and values[1] == pytest.approx(1.0)
    assert values[2] == pytest.approx(1.0) and values[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[2:], values[3:]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_keep_identical_weights(tmp_path: Path, loopback_netns) -> None:
    """torchrun's rendezvous is a network peer: this runs only in the loopback namespace."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    from safetensors.torch import load_file

    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0)
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file()
