"""A tiny synthetic dataset read back with the unmodified nuscenes-devkit: tables, images, masks
and class maps, annotations against pixels, CAN bus and map expansion APIs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.layout import CLASS_ID, FOREGROUND_IDS, class_map_path, fg_mask_path

pytest.importorskip("nuscenes")

WIDTH, HEIGHT = 256, 144
GROUPS = {  # annotation category prefix -> class id its pixels carry
    "vehicle.car": CLASS_ID["vehicle"],
    "vehicle.truck": CLASS_ID["vehicle"],
    "vehicle.bus": CLASS_ID["vehicle"],
    "human.pedestrian": CLASS_ID["human"],
    "vehicle.bicycle": CLASS_ID["cyclist"],
    "movable_object.barrier": CLASS_ID["barrier"],
    "movable_object.trafficcone": CLASS_ID["traffic_cone"],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fastdrive_ros.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "ds"
    summary = generate_dataset(
        root,
        scenes=2,
        seconds=4.0,
        seed=5,
        image_size=(WIDTH, HEIGHT),
        progress=False,
        town_grid=3,
    )
    assert summary.scenes == 2 and summary.samples == 16
    assert summary.images == 2 * (7 * 6 + 1) * 6
    return root


@pytest.fixture(scope="module")
def nusc(dataset: Path):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version="v1.0-synth", dataroot=str(dataset), verbose=False)


def test_tables_link(nusc) -> None:
    assert len(nusc.scene) == 2 and len(nusc.map) == 1
    for scene in nusc.scene:
        tokens, tok = [], scene["first_sample_token"]
        while tok:
            tokens.append(tok)
            tok = nusc.get("sample", tok)["next"]
        assert len(tokens) == scene["nbr_samples"] == 8
        assert tokens[-1] == scene["last_sample_token"]
        assert scene["description"] and "synthetic" in scene["description"]
    for sample in nusc.sample:
        assert sorted(sample["data"]) == sorted(CAMERA_NAMES)
        for channel, sd_token in sample["data"].items():
            sd = nusc.get("sample_data", sd_token)
            assert sd["is_key_frame"] and sd["channel"] == channel
            assert sd["timestamp"] >= sample["timestamp"]
            assert sd["timestamp"] - sample["timestamp"] < 50_000  # cameras fire tens of ms apart
    for sd in nusc.sample_data:
        if sd["next"]:
            nxt = nusc.get("sample_data", sd["next"])
            assert nxt["prev"] == sd["token"] and nxt["channel"] == sd["channel"]
            assert nxt["timestamp"] > sd["timestamp"]
        if not sd["is_key_frame"]:  # sweeps belong to the next keyframe, as in nuScenes
            assert nusc.get("sample", sd["sample_token"])["timestamp"] > sd["timestamp"]
        assert nusc.get("ego_pose", sd["ego_pose_token"])["timestamp"] == sd["timestamp"]
    for inst in nusc.instance:
        chain, tok = [], inst["first_annotation_token"]
        while tok:
            chain.append(tok)
            tok = nusc.get("sample_annotation", tok)["next"]
        assert len(chain) == inst["nbr_annotations"] and chain[-1] == inst["last_annotation_token"]
    names = {c["name"] for c in nusc.category}
    assert {"vehicle.car", "human.pedestrian.adult", "movable_object.trafficcone"} <= names
    assert {a["visibility_token"] for a in nusc.sample_annotation} <= {"1", "2", "3", "4"}


def test_every_image_has_mask_and_class_map(dataset: Path, nusc) -> None:
    for sd in nusc.sample_data:
        image = cv2.imread(str(dataset / sd["filename"]))
        assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
        mask = cv2.imread(str(fg_mask_path(dataset, sd["filename"])), cv2.IMREAD_UNCHANGED)
        cls = cv2.imread(str(class_map_path(dataset, sd["filename"])), cv2.IMREAD_UNCHANGED)
        assert mask.shape == cls.shape == (HEIGHT, WIDTH) and cls.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, np.isin(cls, sorted(FOREGROUND_IDS)))
        assert cls.max() < len(CLASS_ID)


def _box_polygon(box, intrinsic: np.ndarray) -> np.ndarray | None:
    """Image polygon of a camera-frame devkit Box, clipped to z >= 0.1 m."""
    corners = box.corners().T  # (8, 3)
    edges = [
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 0),
        (4, 5),
        (5, 6),
        (6, 7),
        (7, 4),
        (0, 4),
        (1, 5),
        (2, 6),
        (3, 7),
    ]
    pts = [c for c in corners if c[2] >= 0.1]
    for i, j in edges:
        a, b = corners[i], corners[j]
        if (a[2] - 0.1) * (b[2] - 0.1) < 0:
            pts.append(a + (b - a) * (0.1 - a[2]) / (b[2] - a[2]))
    if len(pts) < 3:
        return None
    pts = np.array(pts)
    uv = (intrinsic @ pts.T).T
    uv = uv[:, :2] / uv[:, 2:]
    return cv2.convexHull(np.clip(uv, -1e4, 1e4).astype(np.float32))


def _projection_masks(dataset: Path, nusc, sd_token: str) -> tuple[np.ndarray, dict, list]:
    from nuscenes.utils.geometry_utils import BoxVisibility

    sd = nusc.get("sample_data", sd_token)
    cls = cv2.imread(str(class_map_path(dataset, sd["filename"])), cv2.IMREAD_UNCHANGED)
    _, boxes, intrinsic = nusc.get_sample_data(sd_token, box_vis_level=BoxVisibility.NONE)
    masks: dict[int, np.ndarray] = {}
    per_box = []
    for box in boxes:
        group = next((cid for prefix, cid in GROUPS.items() if box.name.startswith(prefix)), None)
        poly = _box_polygon(box, intrinsic)
        if group is None or poly is None:
            continue
        mask = np.zeros(cls.shape, np.uint8)
        cv2.fillConvexPoly(mask, np.round(poly).astype(np.int32), 1)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        masks[group] = masks.get(group, 0) | mask
        per_box.append((box.token, group, mask))
    return cls, masks, per_box


def test_class_pixels_lie_in_annotated_boxes(dataset: Path, nusc) -> None:
    inside = {"front": [0, 0], "all": [0, 0]}
    for sample in nusc.sample:
        for channel, sd_token in sample["data"].items():
            cls, masks, _ = _projection_masks(dataset, nusc, sd_token)
            for group in (CLASS_ID["vehicle"], CLASS_ID["human"], CLASS_ID["cyclist"]):
                pix = cls == group
                hit = int((pix & (masks.get(group, np.zeros_like(cls)) > 0)).sum())
                for key in ("all", "front") if channel == "CAM_FRONT" else ("all",):
                    inside[key][0] += hit
                    inside[key][1] += int(pix.sum())
    assert inside["front"][1] > 50 and inside["all"][1] > 200, "too few agent pixels to judge"
    # CAM_FRONT fires at the sample time: exact; the others tens of ms later (agents move).
    assert inside["front"][0] / inside["front"][1] > 0.98
    assert inside["all"][0] / inside["all"][1] > 0.93


def test_fully_visible_boxes_show_their_class(dataset: Path, nusc) -> None:
    shown: dict[str, bool] = {}
    for sample in nusc.sample:
        for sd_token in sample["data"].values():
            cls, _, per_box = _projection_masks(dataset, nusc, sd_token)
            for ann_token, group, mask in per_box:
                covered = bool(((cls == group) & (mask > 0)).any())
                shown[ann_token] = shown.get(ann_token, False) or covered
    full = [a["token"] for a in nusc.sample_annotation if a["visibility_token"] == "4"]
    assert full, "no fully visible annotation in the test set"
    assert all(shown.get(tok, False) for tok in full)


def test_can_bus_api(dataset: Path, nusc) -> None:
    from nuscenes.can_bus.can_bus_api import NuScenesCanBus

    can = NuScenesCanBus(dataroot=str(dataset))
    for scene in nusc.scene:
        pose = can.get_messages(scene["name"], "pose")
        steer = can.get_messages(scene["name"], "steeranglefeedback")
        monitor = can.get_messages(scene["name"], "vehicle_monitor")
        utimes = np.array([m["utime"] for m in pose])
        assert np.all(np.diff(utimes) == 20_000)  # 50 Hz
        assert np.all(np.diff([m["utime"] for m in steer]) == 10_000)  # 100 Hz
        assert np.all(np.diff([m["utime"] for m in monitor]) == 500_000)  # 2 Hz
        for key in ("pos", "orientation", "vel", "accel", "rotation_rate"):
            assert key in pose[0]
        for key in ("vehicle_speed", "yaw_rate", "steering", "throttle", "brake"):
            assert key in monitor[0]
        # Speeds agree with the ego poses of the keyframes.
        sample = nusc.get("sample", scene["first_sample_token"])
        poses = []
        while sample:
            sd = nusc.get("sample_data", sample["data"]["CAM_FRONT"])
            poses.append(nusc.get("ego_pose", sd["ego_pose_token"]))
            sample = nusc.get("sample", sample["next"]) if sample["next"] else None
        for a, b in zip(poses[:-1], poses[1:]):
            dist = np.linalg.norm(np.subtract(b["translation"], a["translation"]))
            dt = (b["timestamp"] - a["timestamp"]) / 1e6
            mid = (a["timestamp"] + b["timestamp"]) / 2
            v = np.interp(mid, utimes, [m["vel"][0] for m in pose])
            assert abs(dist / dt - v) < 0.3
        assert len(can.get_messages(scene["name"], "route")) > 10
        assert "pose" in can.get_messages(scene["name"], "meta")


def test_map_api_near_ego(dataset: Path, nusc) -> None:
    from nuscenes.map_expansion.map_api import NuScenesMap
    from shapely.geometry import Point

    log = nusc.get("log", nusc.scene[0]["log_token"])
    nmap = NuScenesMap(dataroot=str(dataset), map_name=log["location"])
    sd = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_FRONT"])
    x, y, _ = nusc.get("ego_pose", sd["ego_pose_token"])["translation"]
    patch = (x - 60, y - 60, x + 60, y + 60)
    layers = [
        "drivable_area",
        "lane",
        "lane_connector",
        "ped_crossing",
        "road_divider",
        "lane_divider",
        "stop_line",
        "walkway",
        "road_segment",
        "traffic_light",
    ]
    records = nmap.get_records_in_patch(patch, layers, mode="intersect")
    assert records["drivable_area"] and records["lane"] and records["road_segment"]
    area = nmap.get("drivable_area", records["drivable_area"][0])
    polygons = [nmap.extract_polygon(t) for t in area["polygon_tokens"]]
    assert any(p.contains(Point(x, y)) for p in polygons)  # the ego drives on the road
    lane = nmap.get("lane", records["lane"][0])
    assert nmap.extract_polygon(lane["polygon_token"]).area > 10.0
    assert len(nmap.discretize_lanes(records["lane"][:1], 1.0)[records["lane"][0]]) > 5
    closest = nmap.get_closest_lane(x, y, radius=5.0)
    assert closest in records["lane"] + records["lane_connector"]
    crossings = nmap.ped_crossing
    assert crossings and nmap.extract_polygon(crossings[0]["polygon_token"]).area > 5.0
    mask = nmap.get_map_mask((x, y, 60, 60), 0.0, ["drivable_area", "ped_crossing"], (120, 120))
    assert mask.shape == (2, 120, 120) and mask[0].sum() > 0
    # The map-table PNG (MapMask, 10 px/m) marks the ego position as drivable.
    assert nusc.get("map", log["map_token"])["mask"].is_on_mask(x, y)[0]


def test_scene_meta_and_dataset_info(dataset: Path, nusc) -> None:
    info = json.loads((dataset / "synth" / "dataset.json").read_text())
    assert info["version"] == "v1.0-synth" and info["image_size"] == [WIDTH, HEIGHT]
    for scene in nusc.scene:
        meta = json.loads((dataset / "synth" / "scenes" / f"{scene['name']}.json").read_text())
        assert len(meta["keyframes"]) == scene["nbr_samples"]
        assert {k["behaviour"] for k in meta["keyframes"]} <= {
            "stopped",
            "braking",
            "turning",
            "following",
            "cruising",
        }
