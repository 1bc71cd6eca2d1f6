"""Worker for test_train_loop's torchrun test: trains a tiny model with Gloo on two processes."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import TensorDataset

from fastdrive_ros.train.distributed import DistContext, unwrap
from fastdrive_ros.train.loop import TrainConfig, Trainer


def main(out: Path) -> None:
    ctx = DistContext.from_env(device="cpu")
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True)
    model = torch.nn.Linear(4, 1)

    def loss_fn(model, batch):
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1]), {}

    trainer = Trainer(
        model=model,
        loss_fn=loss_fn,
        train_set=TensorDataset(x, y),
        val_set=TensorDataset(x, y),
        config=TrainConfig(epochs=2, batch_size=8, lr=1e-2),
        out_dir=out / "run",
        dist=ctx,
        progress=False,
    )
    trainer.fit()
    weights = {k: v.detach().clone() for k, v in unwrap(trainer.model).state_dict().items()}
    save_file(weights, str(out / f"rank{ctx.rank}.safetensors"))
    ctx.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
