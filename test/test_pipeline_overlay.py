from __future__ import annotations

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.pipeline.overlay import kept_mask, kept_tokens_overlay


def test_kept_mask_maps_global_indices_to_camera_grids() -> None:
    grid = np.array([[1, 4, 6], [1, 4, 6]])  # patch units: 2 x 3 merged tokens per camera
    masks = kept_mask(np.array([0, 7, 11]), grid)
    assert masks[0].shape == (2, 3)
    assert masks[0].nonzero() == ((0,), (0,))
    assert list(zip(*masks[1].nonzero())) == [(0, 1), (1, 2)]


def test_overlay_darkens_pruned_cells_in_nuscenes_layout() -> None:
    images = np.full((6, 40, 60, 3), 200, np.uint8)
    for c in range(6):
        images[c, ..., 0] = 10 * c  # tell cameras apart by their red channel
    grid = np.array([[1, 4, 6]] * 6)
    front = CAMERA_NAMES.index("CAM_FRONT")
    kept = np.array([front * 6 + 0])  # only the front camera's top-left token
    mosaic = kept_tokens_overlay(images, kept, grid, camera_names=CAMERA_NAMES, width=300)
    assert mosaic.shape == (134, 300, 3)  # 2 rows of 100 x 67 px cells
    top_middle = mosaic[:67, 100:200]  # CAM_FRONT sits in the middle of the top row
    assert top_middle[5, 5, 1] == 200  # kept cell at full brightness
    assert top_middle[60, 90, 1] == 60  # pruned cells dimmed
    assert mosaic[100, 250, 1] == 60  # CAM_BACK_RIGHT, all pruned
    assert mosaic[100, 250, 0] == int(10 * CAMERA_NAMES.index("CAM_BACK_RIGHT") * 0.3)
