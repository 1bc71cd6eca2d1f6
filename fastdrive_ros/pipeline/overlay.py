"""The kept-tokens overlay: the cameras of a frame in a mosaic, pruned token cells darkened.

Each merged visual token covers one cell of its camera's (h/2) x (w/2) token grid (grid_thw is in
patch units, 2x2 patches per token); the cell is mapped onto the camera image whatever its size.
Six cameras are laid out as nuScenes viewers do: front-left, front, front-right over back-left,
back, back-right; any other set goes in camera order, three per row.
"""

from __future__ import annotations

import cv2
import numpy as np

NUSCENES_LAYOUT = (
    "CAM_FRONT_LEFT",
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_LEFT",
    "CAM_BACK",
    "CAM_BACK_RIGHT",
)
_DIM = 0.3  # brightness of pruned cells


def kept_mask(kept_index: np.ndarray, grid_thw: np.ndarray) -> list[np.ndarray]:
    """Per camera, a (h/2, w/2) bool grid: True where the token was kept."""
    counts = [int(t * h * w) // 4 for t, h, w in grid_thw]
    flat = np.zeros(sum(counts), dtype=bool)
    flat[np.asarray(kept_index, dtype=np.int64)] = True
    masks, start = [], 0
    for (t, h, w), n in zip(grid_thw, counts):
        masks.append(flat[start : start + n].reshape(int(t), int(h) // 2, int(w) // 2).any(0))
        start += n
    return masks


def kept_tokens_overlay(
    images: np.ndarray,
    kept_index: np.ndarray,
    grid_thw: np.ndarray,
    *,
    camera_names: tuple[str, ...],
    width: int = 960,
) -> np.ndarray:
    """[C, H, W, 3] uint8 RGB + kept indices -> one [h, width, 3] uint8 RGB mosaic."""
    cams = images.shape[0]
    if len(camera_names) != cams or len(grid_thw) != cams:
        raise ValueError(f"{cams} images, {len(camera_names)} names, {len(grid_thw)} grid rows")
    masks = kept_mask(kept_index, grid_thw)
    if set(camera_names) == set(NUSCENES_LAYOUT):
        order = [camera_names.index(name) for name in NUSCENES_LAYOUT]
    else:
        order = list(range(cams))
    columns = min(3, cams)
    rows = -(-cams // columns)
    cell_w = max(1, width // columns)
    cell_h = max(1, round(cell_w * images.shape[1] / images.shape[2]))
    mosaic = np.zeros((rows * cell_h, columns * cell_w, 3), np.uint8)
    for slot, cam in enumerate(order):
        view = cv2.resize(images[cam], (cell_w, cell_h), interpolation=cv2.INTER_AREA)
        grid = masks[cam].astype(np.uint8)
        kept = cv2.resize(grid, (cell_w, cell_h), interpolation=cv2.INTER_NEAREST).astype(bool)
        shaded = np.where(kept[..., None], view, (view * _DIM).astype(np.uint8))
        r, c = divmod(slot, columns)
        mosaic[r * cell_h : (r + 1) * cell_h, c * cell_w : (c + 1) * cell_w] = shaded
    return mosaic
