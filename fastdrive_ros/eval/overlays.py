"""Kept-token overlays like FastDriveVLA's Figure 5: which 28-px cells a method keeps, per camera.

Kept cells are shown as they are, dropped cells dimmed; the planned and logged 3 s
trajectories are drawn into the front camera and in a bird's-eye panel, so one image shows what a
method looked at and what it planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fastdrive_ros.data.cameras import CameraCalibration

# nuScenes' usual display order: front row left-to-right, back row left-to-right.
DISPLAY_ORDER = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
DIM = 0.25  # brightness of dropped cells


def token_mask(
    grid_thw: np.ndarray, kept_index: np.ndarray, *, merge: int = 2
) -> list[np.ndarray]:
    """Per camera a (rows, cols) bool grid of kept merged tokens (camera-major, raster order)."""
    shapes = [(int(h) // merge, int(w) // merge) for _, h, w in np.asarray(grid_thw)]
    total = sum(r * c for r, c in shapes)
    kept = np.zeros(total, dtype=bool)
    index = np.asarray(kept_index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= total):
        raise ValueError(f"kept_index out of range for {total} tokens")
    kept[index] = True
    masks, start = [], 0
    for rows, cols in shapes:
        masks.append(kept[start : start + rows * cols].reshape(rows, cols))
        start += rows * cols
    return masks


def shade_tokens(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dim the dropped cells of an (H, W, 3) uint8 image split into mask.shape cells."""
    height, width = image.shape[:2]
    rows, cols = mask.shape
    cell_mask = np.repeat(np.repeat(mask, -(-height // rows), 0), -(-width // cols), 1)
    cell_mask = cell_mask[:height, :width]
    out = image.astype(np.float32)
    out[~cell_mask] *= DIM
    return out.clip(0, 255).astype(np.uint8)


def project_to_image(
    xy: np.ndarray, calibration: CameraCalibration, image_size: tuple[int, int]
) -> np.ndarray:
    """(T, 2) ground points in the ego frame -> (T, 2) pixels in an image of (H, W); NaN behind."""
    height, width = image_size
    points = np.concatenate(
        [np.asarray(xy, float), np.zeros((len(xy), 1)), np.ones((len(xy), 1))], 1
    )
    cam = (calibration.ego_to_camera() @ points.T)[:3]
    scale = np.diag([width / calibration.width, height / calibration.height, 1.0])
    pix = scale @ calibration.intrinsic @ cam
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (pix[:2] / pix[2]).T
    uv[cam[2] < 0.5] = np.nan
    return uv


def render_overlay(
    *,
    images: Sequence[np.ndarray],
    camera_names: Sequence[str],
    grid_thw: np.ndarray,
    kept_index: np.ndarray,
    planned_xy: np.ndarray,
    gt_xy: np.ndarray,
    title: str,
    path: str | Path,
    front_calibration: CameraCalibration | None = None,
) -> Path:
    """Write one PNG: the cameras with kept tokens highlighted, plus a BEV trajectory panel.

    images: per camera (H, W, 3) uint8 RGB at the model's input size (token cells are H/rows).
    """
    from fastdrive_ros.eval.plots import pyplot

    plt = pyplot()
    if len(images) != len(camera_names) or len(images) != len(grid_thw):
        raise ValueError("need one image and one grid row per camera")
    masks = token_mask(grid_thw, kept_index)
    by_name = dict(zip(camera_names, zip(images, masks)))
    fig = plt.figure(figsize=(16, 5.6))
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 0.7])
    for row, names in enumerate(DISPLAY_ORDER):
        for col, name in enumerate(names):
            ax = fig.add_subplot(grid[row, col])
            ax.set_axis_off()
            if name not in by_name:
                continue
            image, mask = by_name[name]
            ax.imshow(shade_tokens(image, mask))
            ax.set_title(f"{name}: {int(mask.sum())}/{mask.size} kept", fontsize=8)
            if name == "CAM_FRONT" and front_calibration is not None:
                size = image.shape[:2]
                for xy, style in ((gt_xy, "g.-"), (planned_xy, "r.-")):
                    uv = project_to_image(xy, front_calibration, size)
                    ax.plot(uv[:, 0], uv[:, 1], style, lw=1.5, ms=4)
                ax.set_xlim(0, size[1])
                ax.set_ylim(size[0], 0)
    bev = fig.add_subplot(grid[:, 3])
    for xy, style, label in ((gt_xy, "g.-", "logged (GT)"), (planned_xy, "r.-", "planned")):
        pts = np.vstack([np.zeros((1, 2)), np.asarray(xy)])
        bev.plot(-pts[:, 1], pts[:, 0], style, label=label)  # x forward = up, y left = left
    bev.set_aspect("equal", adjustable="datalim")
    bev.set_xlabel("lateral (m, right +)")
    bev.set_ylabel("forward (m)")
    bev.grid(alpha=0.3)
    bev.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
