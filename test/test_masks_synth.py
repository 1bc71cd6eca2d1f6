"""Annotation-derived masks (`fastdrive masks`) against the exact synthetic masks.

Thresholds are floors well under what the tiny 160x90 fixture measures (FG IoU ~0.95, road
surface ~0.97, vehicle and human recall ~0.95+), so they catch a broken projection (a flipped axis,
a wrong pose or calibration would drop them far below) without pinning exact pixel counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fastdrive_ros.data.bench_masks import compare_masks, print_scores
from fastdrive_ros.data.fg_masks import build_masks
from fastdrive_ros.data.reader import NuScenesReader

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def scores(synth_dataset: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_masks")
    reader = NuScenesReader(dataroot=synth_dataset, version=VERSION, full_future_only=False)
    summary = build_masks(
        dataroot=synth_dataset, version=VERSION, out=out, class_maps=True, progress=False,
        reader=reader,
    )  # fmt: skip
    rels = [
        f.relpath
        for n in reader.all_scenes()
        for f in reader.camera_frames(n, keyframes_only=True)
    ]
    assert summary.images == len(rels) > 0
    result = {
        s.name: s
        for s in compare_masks(dataroot=synth_dataset, mask_root=out, image_relpaths=rels)
    }
    print_scores(list(result.values()), f"masks vs exact, {len(rels)} images")  # shown with -s
    return result


def test_whole_foreground_mask(scores):
    fg = scores["foreground"]
    assert fg.iou > 0.85
    assert fg.recall > 0.9


def test_road_surface_from_the_map(scores):
    road = scores["road surface"]
    assert road.iou > 0.9 and road.precision > 0.9


def test_boxes_cover_their_objects(scores):
    # a box is bigger than the object in it: recall must be high, precision need not be
    for name in ("vehicle", "human"):
        assert scores[name].exact > 0, name
        assert scores[name].recall > 0.85, name
        assert scores[name].iou > 0.3, name


def test_signs_and_lights_are_not_annotations(scores):
    assert scores["traffic_sign"].predicted == 0 and scores["traffic_light"].predicted == 0
