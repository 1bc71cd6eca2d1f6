"""The reader on a synthetic dataset (session fixture `synth_dataset` in conftest.py).

Ground truth is re-derived here from the raw table JSON with the devkit's pyquaternion, so the
reader's own frame code is not checking itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pyquaternion import Quaternion
from shapely.geometry import Point

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.reader import NuScenesReader

VERSION = "v1.0-synth"


@pytest.fixture(scope="module")
def reader(synth_dataset: Path) -> NuScenesReader:
    return NuScenesReader(dataroot=synth_dataset, version=VERSION, require_masks=True)


@pytest.fixture(scope="module")
def poses_by_time(synth_dataset: Path) -> dict[int, dict]:
    records = json.loads((synth_dataset / VERSION / "ego_pose.json").read_text())
    return {int(p["timestamp"]): p for p in records}


def _pose_near(poses: dict[int, dict], t_us: int, tol_us: int = 2_000) -> dict:
    times = np.array(sorted(poses))
    i = int(np.argmin(np.abs(times - t_us)))
    assert abs(times[i] - t_us) <= tol_us, f"no ego pose within {tol_us} us of {t_us}"
    return poses[int(times[i])]


def _to_ego(pose: dict, xyz: list[float]) -> np.ndarray:
    q = Quaternion(pose["rotation"])
    return q.inverse.rotate(np.asarray(xyz) - np.asarray(pose["translation"]))


def test_devkit_loads_the_synthetic_tables(reader):
    nusc = reader.nusc
    assert len(nusc.scene) == 2 and len(reader.scenes()) == 2
    assert len(nusc.sample) > 0 and len(nusc.sample_annotation) > 0
    assert reader.has_can_bus
    assert len(reader) > 0


def test_every_keyframe_has_six_images_with_masks(reader):
    for sample in reader:
        assert tuple(c.channel for c in sample.cameras) == CAMERA_NAMES
        for cam in sample.cameras:
            assert cam.path.is_file()
            mask = cv2.imread(str(cam.fg_mask), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (cam.calibration.height, cam.calibration.width)
            assert set(np.unique(mask)) <= {0, 255}


def test_futures_agree_with_ego_poses(reader, poses_by_time):
    checked = 0
    for sample in reader:
        current = _pose_near(poses_by_time, sample.timestamp_us)
        assert np.allclose(sample.ego_translation, current["translation"], atol=1e-3)
        for k in range(6):
            t = sample.timestamp_us + 500_000 * (k + 1)
            future = _pose_near(poses_by_time, t)
            expected = _to_ego(current, future["translation"])[:2]
            np.testing.assert_allclose(sample.future_xy[k], expected, atol=0.05)
            heading = Quaternion(current["rotation"]).inverse * Quaternion(future["rotation"])
            yaw = heading.yaw_pitch_roll[0]
            assert abs(np.angle(np.exp(1j * (sample.future_yaw[k] - yaw)))) < 0.01
            checked += 1
        assert sample.future_valid.all()
    assert checked >= 6


def test_history_agrees_with_ego_poses_inside_the_scene(reader, poses_by_time):
    for sample in reader:
        current = _pose_near(poses_by_time, sample.timestamp_us)
        start = reader.scene_index(sample.scene_name).poses.start_us
        for i, dt in enumerate(np.arange(-3.0, 0.01, 0.5)):
            t = sample.timestamp_us + int(round(dt * 1e6))
            if t < start:
                continue
            past = _pose_near(poses_by_time, t, tol_us=50_000)
            tol = 0.05 + abs(past["timestamp"] - t) * 1e-6 * 20.0  # up to 20 m/s off-grid
            expected = _to_ego(current, past["translation"])[:2]
            np.testing.assert_allclose(sample.ego.history_xy[i], expected, atol=tol)


def test_status_from_can_bus_matches_the_motion(reader):
    from fastdrive_ros.data.ego_status import status_from_poses

    for sample in reader:
        status = reader.ego_status(sample.scene_name, sample.timestamp_us)
        assert status.source == "can_bus"
        derived = status_from_poses(
            reader.scene_index(sample.scene_name).poses, sample.timestamp_us
        )
        assert sample.ego.speed == pytest.approx(derived.speed, abs=0.3)
        assert sample.ego.yaw_rate == pytest.approx(derived.yaw_rate, abs=0.05)


def test_future_boxes_and_map(reader, synth_dataset):
    anns = json.loads((synth_dataset / VERSION / "sample_annotation.json").read_text())
    samples = {
        s["token"]: s for s in json.loads((synth_dataset / VERSION / "sample.json").read_text())
    }
    by_time: dict[int, dict[str, dict]] = {}
    span: dict[str, list[int]] = {}
    for ann in anns:
        t = samples[ann["sample_token"]]["timestamp"]
        by_time.setdefault(t, {})[ann["instance_token"]] = ann
        span.setdefault(ann["instance_token"], []).append(t)
    some_boxes = 0
    for sample in reader:
        ego = {"translation": sample.ego_translation, "rotation": sample.ego_rotation}
        for k, boxes in enumerate(sample.future_boxes):
            truth = by_time.get(sample.timestamp_us + 500_000 * (k + 1))
            if truth is None:
                continue
            t = sample.timestamp_us + 500_000 * (k + 1)
            ids = {b.instance_token for b in boxes}
            assert set(truth) <= ids
            # extra boxes: instances hidden (not annotated) at this keyframe but annotated before
            # and after it, so interpolated through the gap
            assert all(min(span[i]) < t < max(span[i]) for i in ids - set(truth))
            for box in (b for b in boxes if b.instance_token in truth):
                expected = _to_ego(ego, truth[box.instance_token]["translation"])[:2]
                np.testing.assert_allclose(box.center_xy, expected, atol=1e-3)
                some_boxes += 1
        # the ego drives on the road; the road boundary is near
        assert sample.map.drivable_area.buffer(0.5).contains(Point(0.0, 0.0))
        assert 0.0 < sample.map.road_boundary.distance(Point(0.0, 0.0)) < 30.0
    assert some_boxes > 0


def test_splits_partition_the_scenes(synth_dataset):
    train = NuScenesReader(dataroot=synth_dataset, version=VERSION, split="train", with_map=False)
    val = NuScenesReader(dataroot=synth_dataset, version=VERSION, split="val", with_map=False)
    assert train.scenes() and val.scenes()
    assert set(train.scenes()) | set(val.scenes()) == set(train.all_scenes())
    assert not set(train.scenes()) & set(val.scenes())
    assert set(train.sample_tokens()).isdisjoint(val.sample_tokens())
