"""`fastdrive masks` on the analytic tiny dataset: layout, placement, segmenter hook."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from nusc_tiny import write_tiny_nuscenes
from typer.testing import CliRunner

from fastdrive_ros.cli import build_app
from fastdrive_ros.data.fg_masks import UNASSIGNED, build_masks, category_class, combine
from fastdrive_ros.data.layout import CLASS_ID, class_map_path, fg_mask_path
from fastdrive_ros.data.projection import CameraProjector
from fastdrive_ros.data.reader import NuScenesReader

VERSION = "v1.0-tiny"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_tiny_nuscenes(
        tmp_path_factory.mktemp("maskdata"), seconds=2.0, image_size=(160, 90), masks=False
    )


@pytest.fixture(scope="module")
def reader(dataset):
    return NuScenesReader(dataroot=dataset, version=VERSION, full_future_only=False)


@pytest.fixture(scope="module")
def built(dataset, reader, tmp_path_factory):
    out = tmp_path_factory.mktemp("masks")
    summary = build_masks(
        dataroot=dataset, version=VERSION, out=out, class_maps=True, progress=False, reader=reader
    )
    return out, summary


def test_one_mask_per_keyframe_image(reader, built):
    out, summary = built
    frames = reader.camera_frames("scene-0001", keyframes_only=True)
    assert summary.images == len(frames) == 6 * 5
    for frame in frames:
        mask = cv2.imread(str(fg_mask_path(out, frame.relpath)), cv2.IMREAD_UNCHANGED)
        classes = cv2.imread(str(class_map_path(out, frame.relpath)), cv2.IMREAD_UNCHANGED)
        assert mask.shape == classes.shape == (90, 160)
        assert set(np.unique(mask)) <= {0, 255}
        fg = np.isin(classes, [CLASS_ID[c] for c in ("road", "crossing", "vehicle")])
        np.testing.assert_array_equal(mask == 255, fg)


def test_car_box_and_road_land_where_they_project(reader, built):
    out, _ = built
    frame = reader.camera_frames("scene-0001", keyframes_only=True)[0]
    assert frame.channel == "CAM_FRONT"
    classes = cv2.imread(str(class_map_path(out, frame.relpath)), cv2.IMREAD_UNCHANGED)
    projector = CameraProjector(calibration=frame.calibration, ego_pose=frame.ego_pose)
    (box,) = reader.agents("scene-0001").boxes_at(frame.timestamp_us, tolerance_s=0.0)
    u, v = np.round(projector.pixels(projector.global_to_camera(box.center[None]))[0]).astype(int)
    assert classes[v, u] == CLASS_ID["vehicle"]
    # the road is below the horizon only; the sky half of the image has nothing assigned
    horizon = projector.below_horizon()
    assert not np.isin(classes[~horizon], [CLASS_ID["road"], CLASS_ID["crossing"]]).any()
    assert (classes[-1] == CLASS_ID["road"]).all()  # bottom row: the strip under the car
    assert (classes[0] == UNASSIGNED).all()
    assert (classes == CLASS_ID["crossing"]).any()  # the crossing 20 m ahead


def test_car_not_seen_by_the_back_camera(reader, built):
    out, _ = built
    back = [
        f
        for f in reader.camera_frames("scene-0001", keyframes_only=True)
        if f.channel == "CAM_BACK"
    ]
    for frame in back:
        classes = cv2.imread(str(class_map_path(out, frame.relpath)), cv2.IMREAD_UNCHANGED)
        assert not (classes == CLASS_ID["vehicle"]).any()


def test_segmenter_is_ored_in(dataset, reader, tmp_path):
    calls = []

    def segmenter(image):
        calls.append(image.shape)
        prob = np.zeros(image.shape[:2])
        prob[:10, :10] = 0.9
        return prob

    out = tmp_path / "seg"
    build_masks(
        dataroot=dataset, version=VERSION, out=out, segmenter=segmenter, progress=False,
        reader=reader, scenes=["scene-0001"],
    )  # fmt: skip
    frame = reader.camera_frames("scene-0001", keyframes_only=True)[0]
    mask = cv2.imread(str(fg_mask_path(out, frame.relpath)), cv2.IMREAD_UNCHANGED)
    assert (mask[:10, :10] == 255).all()
    assert calls and calls[0] == (90, 160, 3)
    ann = np.zeros((4, 4), bool)
    prob = np.full((4, 4), 0.4)
    assert not combine(ann, prob, 0.5).any() and combine(ann, prob, 0.3).all()
    with pytest.raises(ValueError, match="shape"):
        combine(ann, np.zeros((2, 2)), 0.5)


def test_sweeps_and_cli(dataset, reader, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        build_app(),
        ["masks", "--dataroot", str(dataset), "--version", VERSION, "--out", str(tmp_path / "m"),
         "--sweeps", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    frames = reader.camera_frames("scene-0001")
    assert f"wrote {len(frames)} masks" in result.output
    assert all(fg_mask_path(tmp_path / "m", f.relpath).is_file() for f in frames)
    again = runner.invoke(
        build_app(),
        ["masks", "--dataroot", str(dataset), "--version", VERSION, "--out", str(tmp_path / "m")],
    )  # fmt: skip
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = runner.invoke(
        build_app(),
        ["masks", "--dataroot", str(dataset), "--version", VERSION, "--out", str(tmp_path / "x"),
         "--scene", "scene-7777"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "valid scenes" in bad.output


def test_cli_segmenter_hook(dataset, reader, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        build_app(),
        ["masks", "--dataroot", str(dataset), "--version", VERSION, "--out", str(tmp_path / "s"),
         "--segmenter", "nusc_tiny:top_rows_segmenter", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for frame in reader.camera_frames("scene-0001", keyframes_only=True):
        mask = cv2.imread(str(fg_mask_path(tmp_path / "s", frame.relpath)), cv2.IMREAD_UNCHANGED)
        assert (mask[:5] == 255).all()
    bad = runner.invoke(
        build_app(),
        ["masks", "--dataroot", str(dataset), "--version", VERSION, "--out", str(tmp_path / "t"),
         "--segmenter", "no_colon_here"],
    )  # fmt: skip
    assert bad.exit_code == 2 and "package.module:factory" in bad.output


def test_category_classes():
    assert category_class("vehicle.car") == "vehicle"
    assert category_class("vehicle.bus.rigid") == "vehicle"
    assert category_class("vehicle.bicycle") == "cyclist"
    assert category_class("human.pedestrian.adult") == "human"
    assert category_class("movable_object.trafficcone") == "traffic_cone"
    assert category_class("movable_object.barrier") == "barrier"
    assert category_class("static_object.bicycle_rack") is None
    assert category_class("animal") is None
