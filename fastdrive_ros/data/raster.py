"""Exact pixel-centre polygon rasterisation (even-odd), vectorised as scanline crossings.

cv2.fillPoly also fills every pixel its outline touches, which widens a shape by about a pixel:
harmless for large regions, but a far crossing or road edge a pixel thin comes out several times
too big. Ground regions are sampled at pixel centres here (integer coordinates are centres), as a
renderer that casts one ray per pixel does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rasterize(rings: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """(H, W) bool: pixel centres inside the polygon rings (N_i, 2) x, y, by the even-odd rule.

    Rings may be holes or islands of each other; edges are half-open in y, so a centre on a
    shared edge belongs to exactly one side.
    """
    out = np.zeros((height, width), bool)
    rings = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in rings if len(r) >= 3]
    if not rings or height <= 0 or width <= 0:
        return out
    p0 = np.concatenate(rings)
    p1 = np.concatenate([np.roll(r, -1, axis=0) for r in rings])
    ylo, yhi = np.minimum(p0[:, 1], p1[:, 1]), np.maximum(p0[:, 1], p1[:, 1])
    row0 = max(0, int(np.ceil(ylo.min())))
    row1 = min(height - 1, int(np.ceil(yhi.max())) - 1)
    if row1 < row0:
        return out
    rows = np.arange(row0, row1 + 1, dtype=np.float64)
    crosses = (rows[None, :] >= ylo[:, None]) & (rows[None, :] < yhi[:, None])
    edge, row = np.nonzero(crosses)
    if len(edge) == 0:
        return out
    a, b = p0[edge], p1[edge]
    t = (rows[row] - a[:, 1]) / (b[:, 1] - a[:, 1])
    x = a[:, 0] + t * (b[:, 0] - a[:, 0])
    col0 = max(0, int(np.ceil(p0[:, 0].min())))
    col1 = min(width, int(np.ceil(p0[:, 0].max())))  # one past the last centre inside
    if col1 <= col0:
        return out
    col = np.clip(np.ceil(x), col0, col1).astype(np.int64) - col0  # first centre right of x
    toggles = np.zeros((len(rows), col1 - col0 + 1), np.int32)
    np.add.at(toggles, (row, col), 1)
    inside = np.cumsum(toggles[:, :-1], axis=1, dtype=np.int32) & 1
    out[row0 : row1 + 1, col0:col1] = inside.astype(bool)
    return out
