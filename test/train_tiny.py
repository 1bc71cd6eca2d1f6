"""A tiny synthetic world and a tiny VLA bundle for the training tests (made once a session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.records import KeyframeRecord

VERSION = "v1.0-synth"
IMAGE_SIZE = (56, 84)  # tiny_config's H x W: 2 x 3 merged tokens per camera


def tiny_world(factory: pytest.TempPathFactory, seed: int = 5) -> Path:
    """Three 4.5-s synthetic scenes at the tiny model's size (train/val split by scene hash)."""
    from fastdrive_ros.data.synth.generate import generate_dataset

    root = factory.getbasetemp() / (
        "train_tiny_world" if seed == 5 else f"train_tiny_world_{seed}"
    )
    if not (root / "synth" / "dataset.json").is_file():
        generate_dataset(
            root,
            scenes=3,
            seconds=4.5,
            seed=seed,
            image_size=(IMAGE_SIZE[1], IMAGE_SIZE[0]),
            sweeps=False,
            progress=False,
            overwrite=True,
            town_grid=2,
        )
    return root


def tiny_bundle(factory: pytest.TempPathFactory) -> Path:
    """A random tiny six-camera VLA bundle (regression head and ReconPruner)."""
    folder = factory.getbasetemp() / "train_tiny_bundle"
    if not (folder / "config.json").is_file():
        VLA.build(tiny_config(cameras=6), seed=0).save_pretrained(folder)
    return folder


def imageless_record(token: str, scene: str, ego: EgoState, future: np.ndarray) -> KeyframeRecord:
    """A one-camera KeyframeRecord with no files: for code that reads only ego and future."""
    return KeyframeRecord(
        token=token,
        scene=scene,
        cameras=("CAM_FRONT",),
        images=("x.jpg",),
        fg_masks=(None,),
        class_maps=(None,),
        ego=ego,
        future_xy=future,
        future_valid=np.ones(len(future), dtype=bool),
    )


def decision_world(seed: int, *, future_from: str, n: int = 240):
    """Imageless keyframes whose 3-s future accelerates by the recorded decision
    (`future_from="decision"`) or by a cause no label knows ("hidden"), with scene labels.

    Returns (records, {token: SceneLabel}); 12 scenes, kinds none / vehicle / red_light in turn.
    """
    import math

    from fastdrive_ros.data.world_labels import SceneLabel

    rng = np.random.default_rng(seed)
    t = np.arange(1, 7) * 0.5
    records, labels = [], {}
    for i in range(n):
        v = rng.uniform(3, 12)
        decided = rng.uniform(-3, 1)
        hidden = rng.uniform(-3, 1)
        a = decided if future_from == "decision" else hidden
        future = np.stack([v * t + 0.5 * a * t**2, 0 * t], axis=1)
        ego = EgoState(np.zeros((7, 2)), speed=v, acceleration=a, yaw_rate=0.0, steering=0.0)
        record = imageless_record(f"k{seed}-{i}", f"s{i % 12}", ego, future)
        kind = ("none", "vehicle", "red_light")[i % 3]
        gap = math.inf if kind == "none" else rng.uniform(5, 60)
        labels[record.token] = SceneLabel(kind, gap, rng.uniform(0, 10), decided)
        records.append(record)
    return records, labels
