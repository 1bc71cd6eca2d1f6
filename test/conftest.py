"""Shared fixtures: loopback-only network checks, small temporary datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _only_loopback() -> bool:
    """True when this process's network namespace has no interface but `lo`."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    names = {line.split(":", 1)[0].strip() for line in lines}
    return names <= {"lo"}


@pytest.fixture
def loopback_netns() -> None:
    """Skip unless the test runs inside the loopback-only namespace made by scripts/netns-run."""
    if os.environ.get("FASTDRIVE_NETNS") != "isolated" or not _only_loopback():
        pytest.skip(
            "needs a loopback-only network namespace: run via `make test` (scripts/netns-run)"
        )


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic nuScenes-format dataset, generated once per session and shared.

    Two 6 s scenes, 160x90 images with 12 Hz sweeps (reader, masks and bag tests read it; do
    not modify it in a test: copy it first).
    """
    from fastdrive_ros.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth_dataset") / "data"
    generate_dataset(
        root, scenes=2, seconds=6.0, seed=3, image_size=(160, 90), sweeps=True, progress=False,
        town_grid=3,
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's synthetic world (train_tiny.tiny_world); read-only for tests."""
    from train_tiny import tiny_world

    return tiny_world(tmp_path_factory)


@pytest.fixture(scope="session")
def records(world: Path):
    """The tiny world's keyframe records."""
    from train_tiny import VERSION

    from fastdrive_ros.train.records import read_records

    return read_records(dataroot=world, version=VERSION, progress=False)
