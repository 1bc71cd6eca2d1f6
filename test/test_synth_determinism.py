"""Same seed -> byte-identical dataset (tables, images, masks, CAN, maps), whatever the number
of workers; another seed differs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fastdrive_ros.data.synth import generate_dataset, world


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _make(root: Path, seed: int, workers: int = 1) -> dict[str, str]:
    world._TOWNS.clear()  # rebuild the town too: it must be deterministic as well
    generate_dataset(
        root,
        scenes=2,
        seconds=3.5,
        seed=seed,
        image_size=(128, 72),
        progress=False,
        town_grid=2,
        workers=workers,
    )
    return _digest(root)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _make(tmp_path_factory.mktemp("a") / "ds", seed=7)


def test_same_seed_same_bytes(first: dict[str, str], tmp_path: Path) -> None:
    again = _make(tmp_path / "ds", seed=7, workers=2)  # worker processes build their own town
    assert again.keys() == first.keys()
    changed = [name for name in first if first[name] != again[name]]
    assert not changed, f"{len(changed)} files differ, e.g. {changed[:5]}"
    kinds = {name.split("/")[0] for name in first}
    assert {
        "v1.0-synth",
        "samples",
        "sweeps",
        "fg_masks",
        "class_maps",
        "can_bus",
        "maps",
    } <= kinds


def test_other_seed_differs(first: dict[str, str], tmp_path: Path) -> None:
    other = _make(tmp_path / "ds", seed=8)
    table = "v1.0-synth/sample_annotation.json"
    assert other[table] != first[table]
    assert other["v1.0-synth/ego_pose.json"] != first["v1.0-synth/ego_pose.json"]
    masks_a = {v for k, v in first.items() if k.startswith("class_maps/samples")}
    masks_b = {v for k, v in other.items() if k.startswith("class_maps/samples")}
    assert not masks_a & masks_b


def test_scenes_of_one_run_differ(first: dict[str, str]) -> None:
    can_a = first["can_bus/scene-0000_pose.json"]
    can_b = first["can_bus/scene-0001_pose.json"]
    assert can_a != can_b
