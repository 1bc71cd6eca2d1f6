"""Brake lamps: a braking or standing car ahead shows it in one frame (opt-in world option)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastdrive_ros.data.synth import generate_dataset
from fastdrive_ros.data.synth.scene import BRAKE_DECEL, HOLD_SPEED, brake_lamps_on
from fastdrive_ros.data.synth.world import materials


def test_lamps_light_when_slowing_or_standing_but_not_when_parked() -> None:
    window = 0.2
    speed = np.array([10.0, 10.0, 0.0, 0.0, 8.0])
    before = speed + window * np.array([BRAKE_DECEL + 0.5, BRAKE_DECEL - 0.5, 0.0, 0.0, -1.0])
    parked = np.array([False, False, False, True, False])
    assert brake_lamps_on(speed, before, window, parked).tolist() == [
        True,  # braking
        False,  # coasting: slower than the threshold
        True,  # standing in traffic
        False,  # parked
        False,  # speeding up
    ]
    assert HOLD_SPEED > 0


def test_the_lit_lamps_are_a_new_material_after_every_other() -> None:
    mats = materials()
    assert mats.ids["car_back_braking"] == len(mats.tiles) - 1  # earlier ids (worlds) unchanged
    lit, unlit = (mats.tiles[mats.ids[k]].astype(int) for k in ("car_back_braking", "car_back"))
    redder = (lit[..., 0] - lit[..., 1:].mean(-1)) - (unlit[..., 0] - unlit[..., 1:].mean(-1))
    assert (redder >= 0).all() and (redder > 100).mean() > 0.1  # more lamp, and red


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    roots = []
    for lit in (False, True):
        root = tmp_path_factory.mktemp(f"lamps{int(lit)}") / "ds"
        generate_dataset(root, scenes=1, seconds=8.0, seed=33, image_size=(252, 140),
                         sweeps=False, progress=False, brake_lights=lit)  # fmt: skip
        roots.append(root)
    return roots[0], roots[1]


def _front(root: Path) -> list[Path]:
    return sorted((root / "samples" / "CAM_FRONT").glob("*.jpg"))


def test_a_braking_lead_shows_red_lamps_and_nothing_else_changes(pair) -> None:
    off, on = pair
    assert json.loads((on / "synth" / "dataset.json").read_text())["brake_lights"] is True
    assert json.loads((off / "synth" / "dataset.json").read_text())["brake_lights"] is False
    changed = 0
    for a, b in zip(_front(off), _front(on), strict=True):
        x = np.asarray(Image.open(a), dtype=float)
        y = np.asarray(Image.open(b), dtype=float)
        moved = np.abs(y - x).sum(-1) > 60
        if moved.sum() < 3:
            continue
        changed += 1
        redness = (y[..., 0] - y[..., 1:].mean(-1)) - (x[..., 0] - x[..., 1:].mean(-1))
        assert redness[moved].mean() > 15  # the changed pixels turned red
    assert changed >= 1, "no keyframe of seed 33's first scene shows a braking car"
    for a, b in zip(
        sorted((off / "class_maps").rglob("*.png")), sorted((on / "class_maps").rglob("*.png"))
    ):
        assert a.read_bytes() == b.read_bytes()  # lamps are paint: the classes do not move
