"""Per-route GIF: the six cameras with kept tokens bright beside a bird's-eye view of the drive.

One GIF frame per plan: cameras as the car saw them (front row: FRONT_LEFT, FRONT, FRONT_RIGHT;
back row: BACK_LEFT, BACK, BACK_RIGHT), pruned tokens darkened; right, north-up around the car:
route (grey), path driven so far (blue), the plan just made (red), agents (orange boxes).
Drawn with OpenCV and written with Pillow (matplotlib per frame would cost seconds per route).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.eval.closed_loop.episode import PlanRecord, RouteRun
from fastdrive_ros.eval.closed_loop.infractions import ego_corners

MOSAIC = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
TOKEN_PX = 28  # model pixels per merged token
DIM = 0.3
BEV_M = 60.0  # metres shown across the bird's-eye view


def token_mask(
    kept: np.ndarray, total: int, cameras: int, thumb_hw: tuple[int, int], scale: int
) -> np.ndarray:
    """(cameras, h, w) bool: pixels of kept tokens in each camera's thumbnail."""
    per = max(1, total // cameras) if total else 0
    h, w = thumb_hw
    cols = (w * scale) // TOKEN_PX
    rows = (h * scale) // TOKEN_PX
    grid = np.zeros((cameras, max(rows, 1) * max(cols, 1)), bool)
    if per and rows * cols == per:
        idx = np.asarray(kept, np.int64)
        grid[idx // per, idx % per] = True
    else:  # unknown layout: show everything as kept
        grid[:] = True
    grid = grid.reshape(cameras, max(rows, 1), max(cols, 1)).astype(np.uint8)
    return np.stack([cv2.resize(g, (w, h), interpolation=cv2.INTER_NEAREST) for g in grid]) > 0


def camera_mosaic(rec: PlanRecord, scale: int = 2) -> np.ndarray:
    images = rec.images
    h, w = images.shape[1:3]
    mask = token_mask(rec.kept_index, rec.total_tokens, len(CAMERA_NAMES), (h, w), scale)
    rows = []
    for names in MOSAIC:
        row = []
        for name in names:
            c = CAMERA_NAMES.index(name)
            img = images[c].astype(np.float32)
            img[~mask[c]] *= DIM
            row.append(img.astype(np.uint8))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def bird_eye(run: RouteRun, rec: PlanRecord, tick: int, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 245, np.uint8)
    centre = rec.pose[:2]
    px = size / BEV_M

    def to_px(xy: np.ndarray) -> np.ndarray:
        rel = (np.asarray(xy) - centre) * px
        return np.stack([size / 2 + rel[:, 0], size / 2 - rel[:, 1]], 1).round().astype(np.int32)

    cv2.polylines(img, [to_px(run.route_xy)], False, (190, 190, 190), 6, cv2.LINE_AA)
    if rec.agents is not None:
        for x, y, yaw, hw, hl in rec.agents:
            c, s = np.cos(yaw), np.sin(yaw)
            f, lft = np.array([c, s]) * hl, np.array([-s, c]) * hw
            box = np.array(
                [[x, y] + f + lft, [x, y] + f - lft, [x, y] - f - lft, [x, y] - f + lft]
            )
            cv2.fillConvexPoly(img, to_px(box), (240, 150, 40), cv2.LINE_AA)
    if tick > 1:
        cv2.polylines(img, [to_px(run.driven_xy[:tick])], False, (40, 90, 220), 2, cv2.LINE_AA)
    if rec.plan_xy is not None:
        pts = to_px(rec.plan_xy)
        cv2.polylines(img, [pts], False, (220, 30, 30), 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(v) for v in p), 3, (220, 30, 30), -1)
    cv2.fillConvexPoly(img, to_px(ego_corners(*rec.pose)), (30, 30, 30), cv2.LINE_AA)
    label = f"t={rec.t:4.1f}s  {rec.command}  kept {len(rec.kept_index)}/{rec.total_tokens}"
    cv2.putText(img, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_gif(run: RouteRun, path: Path, dt: float, fps: float = 4.0) -> Path | None:
    """The route's GIF at `path` (None when nothing was recorded)."""
    from PIL import Image

    recs = [r for r in run.plans if r.images is not None]
    if not recs:
        return None
    frames = []
    for rec in recs:
        cams = camera_mosaic(rec)
        tick = int(round(rec.t / dt))
        bev = bird_eye(run, rec, tick, cams.shape[0])
        frames.append(Image.fromarray(np.concatenate([cams, bev], axis=1)))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=int(1000 / fps),
        loop=0,
        optimize=False,
    )
    return path
