"""The renderer: exact z-buffer occlusion, ground projection, depths and silhouettes."""

from __future__ import annotations

import numpy as np
import pytest

from fastdrive_ros.data.cameras import rig
from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.meshes import (
    Prism,
    box_corners,
    face_frames,
    place,
    prisms_to_faces,
)
from fastdrive_ros.data.synth.raster import silhouette_areas
from fastdrive_ros.data.synth.render import CameraRenderer, GroundMap, Shading
from fastdrive_ros.data.synth.textures import build_materials

W, H = 320, 180


@pytest.fixture(scope="module")
def scene():
    mats = build_materials()
    res = 0.1
    cls = np.full((1000, 1000), CLASS_ID["road"], np.uint8)  # x in [-50, 50], y in [-50, 50]
    cls[:, 595:605] = CLASS_ID["lane_marking"]  # a 1 m band across the road at x = 10 m
    rgb = np.full((1000, 1000, 3), 90, np.uint8)
    ground = GroundMap(rgb, cls, -50.0, 50.0, res, (90, 120, 60))
    sky = np.full((16, 64, 3), 200, np.uint8)
    shading = Shading(np.array([0.0, 0.0, 1.0]), 0.6, 0.4, np.full(3, 200, np.float32))
    cam = CameraRenderer(calibration=rig(W, H)[0])  # CAM_FRONT
    return mats, ground, sky, shading, cam


def _block(paint, cls: str, *, size: tuple[float, float], at: tuple[float, float], height: float):
    """An axis-aligned single-material box of class `cls` standing on the ground at `at`."""
    return Prism(
        place(box_corners(*size), at[0], at[1], 0.0),
        0.0,
        height,
        (paint,) * 4,
        paint,
        None,
        CLASS_ID[cls],
    )


def _render(scene, prisms, owners=None, silhouettes=None):
    mats, ground, sky, shading, cam = scene
    faces = prisms_to_faces(prisms, owners if owners is not None else -1)
    frames = face_frames(faces, mats)
    shade = np.ones((len(faces), 3), np.float32)
    return cam.render(
        ego_pose=np.zeros(3),
        ground=ground,
        sky=sky,
        shading=shading,
        faces=faces,
        frames=frames,
        shade=shade,
        materials=mats,
        silhouettes=silhouettes,
    )


def _project(cam: CameraRenderer, point_ego: np.ndarray) -> tuple[int, int, float]:
    p = cam.rot.T @ (point_ego - cam.trans)
    return (
        int(round(cam.fx * p[0] / p[2] + cam.cx)),
        int(round(cam.fy * p[1] / p[2] + cam.cy)),
        p[2],
    )


def test_ground_projection_and_depth(scene) -> None:
    cam = scene[-1]
    frame = _render(scene, [])
    u, v, z = _project(cam, np.array([10.0, 0.0, 0.0]))
    assert frame.cls[v, u] == CLASS_ID["lane_marking"]
    assert frame.depth[v, u] == pytest.approx(z, rel=0.02)
    u, v, _ = _project(cam, np.array([20.0, 1.0, 0.0]))
    assert frame.cls[v, u] == CLASS_ID["road"]
    assert frame.cls[0, W // 2] == CLASS_ID["sky"] and np.isinf(frame.depth[0, W // 2])


def test_nearer_box_occludes_farther_one(scene) -> None:
    mats, *_, cam = scene
    paint = mats["paint"]
    near = _block(paint, "vehicle", size=(2.0, 2.0), at=(12.0, 0.0), height=2.0)
    far = _block(paint, "building", size=(4.0, 12.0), at=(25.0, 0.0), height=6.0)
    for order in ([near, far], [far, near]):  # drawing order must not matter
        frame = _render(scene, order)
        u, v, z = _project(cam, np.array([11.0, 0.0, 1.0]))  # centre of the near box's front
        assert frame.cls[v, u] == CLASS_ID["vehicle"]
        assert frame.depth[v, u] == pytest.approx(z, rel=1e-3)
        u, v, z = _project(cam, np.array([23.0, 4.0, 4.0]))  # far front face, beside the box
        assert frame.cls[v, u] == CLASS_ID["building"]
        assert frame.depth[v, u] == pytest.approx(z, rel=1e-3)


def test_silhouette_counts_occluded_pixels(scene) -> None:
    mats, *_ = scene
    paint = mats["paint"]
    wall = _block(paint, "building", size=(0.5, 1.5), at=(8.0, -0.4), height=3.0)
    car = _block(paint, "vehicle", size=(4.5, 1.8), at=(16.0, 0.0), height=1.5)
    sil: dict[int, list[np.ndarray]] = {}
    frame = _render(scene, [wall, car], owners=[-1, 0], silhouettes=sil)
    visible = int((frame.inst == 1).sum())
    area = silhouette_areas(sil, W, H)[0]
    assert 0 < visible < area  # partly behind the wall
    assert (frame.cls[frame.inst == 1] == CLASS_ID["vehicle"]).all()
    sil = {}
    frame = _render(scene, [car], owners=[0], silhouettes=sil)
    assert silhouette_areas(sil, W, H)[0] == pytest.approx((frame.inst == 1).sum(), rel=0.05)


def test_box_behind_camera_is_clipped_not_drawn_wrongly(scene) -> None:
    mats, *_ = scene
    paint = mats["paint"]
    # A long box from behind the camera to 10 m ahead, beside the road: near-plane clipping.
    side = _block(paint, "building", size=(20.0, 1.0), at=(0.0, 4.0), height=3.0)
    frame = _render(scene, [side])
    assert (frame.cls == CLASS_ID["building"]).sum() > 0
    assert np.all(frame.depth[frame.cls == CLASS_ID["building"]] > 0.1)
