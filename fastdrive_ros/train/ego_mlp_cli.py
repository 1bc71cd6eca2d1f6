"""`fastdrive train-ego-mlp`: the ego-only reference MLPs (one per ego-input setting) of a bundle.

Trains on the keyframes the bundle's planner was trained on (pass the same dataroot and split)
and saves <model>/ego_mlp/<inputs>.safetensors, which `fastdrive eval` loads for its `ego_mlp`
reference row. Seconds of CPU once the keyframe records are read (the first read of a dataset
takes a minute; the records are cached under --work-dir).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fastdrive_ros.cli import fail, split_list

Opt = typer.Option


def train_ego_mlp_command(
    model: Annotated[Path, Opt(help="Model bundle that receives ego_mlp/<inputs>.safetensors.")],
    dataroot: Annotated[Path, Opt(help="The planner's training dataroot (nuScenes layout).")],
    version: Annotated[str, Opt(help="Table version of --dataroot: v1.0-synth, v1.0-mini...")],
    split: Annotated[str, Opt(help="Training scenes: train, val or all.")] = "all",
    ego_inputs: Annotated[
        str, Opt(help="Comma-separated settings to train: full, minimal.")
    ] = "full,minimal",
    work_dir: Annotated[
        Path | None, Opt(help="Where the keyframe records are cached (default MODEL/../work).")
    ] = None,
    epochs: Annotated[int, Opt(help="Passes over the keyframes.")] = 300,
    hidden: Annotated[int, Opt(help="Width of the two hidden layers.")] = 128,
    lr: Annotated[float, Opt(help="Peak learning rate (AdamW, cosine).")] = 3e-3,
    seed: Annotated[int, Opt(help="Seed of the initialisation and batch order.")] = 0,
    threads: Annotated[int, Opt(help="Torch CPU threads.")] = 1,
    progress: Annotated[bool, Opt(help="Show a progress bar while reading keyframes.")] = True,
) -> None:
    """Train the ego-status-only MLP references (AD-MLP style) and save them into the bundle."""
    import torch

    from fastdrive_ros.core_types import EGO_INPUTS
    from fastdrive_ros.train.ego_mlp import EgoExample, EgoMLPConfig, train_bundle_ego_mlps
    from fastdrive_ros.train.workspace import DataSpec, Workspace

    settings = split_list(ego_inputs)
    bad = [s for s in settings if s not in EGO_INPUTS]
    if not settings or bad:
        raise fail(f"--ego-inputs takes {', '.join(EGO_INPUTS)}, got {ego_inputs!r}")
    if epochs < 1 or hidden < 1 or threads < 1:
        raise fail("--epochs, --hidden and --threads must be >= 1")
    if not (model / "config.json").is_file():
        raise fail(f"{model} is not a model bundle (no config.json)")
    torch.set_num_threads(threads)
    space = Workspace(work_dir or model.parent / "work")
    try:
        records = space.records(DataSpec(dataroot, version, split), progress=progress)
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    examples = [EgoExample(r.ego, r.future_xy, r.future_valid) for r in records]
    config = EgoMLPConfig(hidden=hidden, epochs=epochs, lr=lr, seed=seed)
    source = {"dataroot": str(dataroot), "version": version, "split": split}
    summaries = train_bundle_ego_mlps(
        examples, model, config=config, settings=settings, source=source
    )
    for inputs, summary in summaries.items():
        typer.echo(
            f"{inputs}: {summary['samples']} keyframes, {summary['parameters']} parameters, "
            f"train L2 Avg {100 * summary['train_l2_avg']:.1f} cm (prior "
            f"{100 * summary['train_l2_avg_prior']:.1f} cm), {summary['seconds']} s -> "
            f"{summary['path']}"
        )
    typer.echo(json.dumps({k: {"path": v["path"]} for k, v in summaries.items()}))


def register(app: typer.Typer) -> None:
    app.command(name="train-ego-mlp")(train_ego_mlp_command)
