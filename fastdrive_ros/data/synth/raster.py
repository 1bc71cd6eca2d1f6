"""Rasterising quads into a frame: the dense and the batched paths, silhouettes, near clipping.

All paths write the same buffers (RGB, class, depth, agent id) under one z-buffer rule, so which
path draws a quad never changes which surface wins a pixel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from fastdrive_ros.data.synth.textures import TILE

if TYPE_CHECKING:
    from fastdrive_ros.data.synth.render import Frame

NEAR_M = 0.2


def draw_dense(
    frame: Frame,
    box: tuple[int, int, int, int],
    sel: np.ndarray,
    inv_z: np.ndarray,
    homog: np.ndarray,
    tile: np.ndarray,
    fit: bool,
    cls: int,
    owner: int,
    shade: np.ndarray,
) -> None:
    """Write a mostly-visible quad over its whole box.

    The texture comes from one perspective warp (wrapping for repeating materials); the copies
    into the frame are masked by `sel`.
    """
    y0, y1, x0, x1 = box
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    border = cv2.BORDER_REPLICATE if fit else cv2.BORDER_WRAP
    color = cv2.warpPerspective(
        tile,
        homog @ shift,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=border,
    )
    color = cv2.multiply(color, (float(shade[0]), float(shade[1]), float(shade[2]), 0.0))
    mask = sel.view(np.uint8)
    # cv2.copyTo writes into the frame's views in place (numpy's masked copyto with a
    # broadcast 3-channel mask is ~100x slower).
    cv2.copyTo(color, mask, frame.rgb[y0:y1, x0:x1])
    with np.errstate(divide="ignore"):
        cv2.copyTo(1.0 / inv_z, mask, frame.depth[y0:y1, x0:x1])
    frame.cls[y0:y1, x0:x1][sel] = cls
    frame.inst[y0:y1, x0:x1][sel] = owner + 1


def draw_batch(
    frame: Frame,
    pu: np.ndarray,
    pv: np.ndarray,
    x0: np.ndarray,
    x1: np.ndarray,
    y0: np.ndarray,
    y1: np.ndarray,
    plane: np.ndarray,
    tex_a: np.ndarray,
    tex_b: np.ndarray,
    tex_c: np.ndarray,
    tex_k: np.ndarray,
    mats: np.ndarray,
    fit: np.ndarray,
    classes: np.ndarray,
    owners: np.ndarray,
    shades: np.ndarray,
    flat_tiles: np.ndarray,
) -> None:
    """Rasterise K small convex quads at once.

    Every pixel centre of each quad's box that lies inside the quad (or within half a pixel of
    its edges, so thin poles stay visible) is a candidate; the nearest quad per pixel then meets
    the z-test against the frame's depth buffer.
    """
    w = frame.depth.shape[1]
    bw, bh = x1 - x0, y1 - y0
    counts = bw * bh
    total = int(counts.sum())
    face = np.repeat(np.arange(len(counts)), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(total) - start
    width = bw[face]
    px = (x0[face] + local % width).astype(np.float32)
    py = (y0[face] + local // width).astype(np.float32)
    # Edge functions of the (convex) quads, oriented so that inside is positive.
    ax, ay = pu, pv
    bx, by = np.roll(pu, -1, axis=1), np.roll(pv, -1, axis=1)
    ex, ey = bx - ax, by - ay
    orient = np.sign((ex * np.roll(ey, -1, axis=1) - ey * np.roll(ex, -1, axis=1)).sum(axis=1))
    norm = np.maximum(np.hypot(ex, ey), 1e-9)
    ca = (-ey * orient[:, None] / norm).astype(np.float32)
    cb = (ex * orient[:, None] / norm).astype(np.float32)
    cc = ((ey * ax - ex * ay) * orient[:, None] / norm + 0.5).astype(np.float32)
    inside = np.ones(total, bool)
    for e in range(4):
        inside &= ca[face, e] * px + cb[face, e] * py + cc[face, e] >= 0
    flat = (py * w + px).astype(np.int64)
    inv_z = plane[face, 0] * px + plane[face, 1] * py + plane[face, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside &= (inv_z * frame.depth.ravel()[flat] > 1.0) & (inv_z < 1.0 / NEAR_M)
    cand = np.flatnonzero(inside)
    if not len(cand):
        return
    order = np.lexsort((-inv_z[cand], flat[cand]))
    cand = cand[order]
    first = np.ones(len(cand), bool)
    first[1:] = flat[cand][1:] != flat[cand][:-1]
    win = cand[first]
    f, pix = face[win], flat[win]
    zs = 1.0 / inv_z[win]
    us, vs = px[win], py[win]
    ts = zs * (tex_a[f, 0] * us + tex_b[f, 0] * vs + tex_c[f, 0]) - tex_k[f, 0]
    tt = zs * (tex_a[f, 1] * us + tex_b[f, 1] * vs + tex_c[f, 1]) - tex_k[f, 1]
    fits = fit[f]
    ti = np.where(fits, np.clip(ts, 0, TILE - 1), ts)
    tj = np.where(fits, np.clip(tt, 0, TILE - 1), tt)
    ti = np.floor(ti).astype(np.int64) & (TILE - 1)
    tj = np.floor(tj).astype(np.int64) & (TILE - 1)
    color = flat_tiles[(mats[f].astype(np.int64) * TILE + tj) * TILE + ti] * shades[f]
    frame.depth.ravel()[pix] = zs
    frame.cls.ravel()[pix] = classes[f]
    frame.inst.ravel()[pix] = owners[f] + 1
    frame.rgb.reshape(-1, 3)[pix] = np.minimum(color, 255.0).astype(np.uint8)


def silhouette_areas(
    polys: dict[int, list[np.ndarray]], width: int, height: int
) -> dict[int, int]:
    """Pixels covered by each owner's faces, ignoring occlusion by anything else.

    Same fill rule as the renderer, inside a width x height image.
    """
    out = {}
    for owner, items in polys.items():
        allp = np.concatenate(items)
        x0 = max(int(np.floor(allp[:, 0].min())), 0)
        x1 = min(int(np.ceil(allp[:, 0].max())) + 1, width)
        y0 = max(int(np.floor(allp[:, 1].min())), 0)
        y1 = min(int(np.ceil(allp[:, 1].max())) + 1, height)
        if x1 <= x0 or y1 <= y0:
            out[owner] = 0
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for p in items:
            pts = np.round((p - [x0, y0]) * 16).astype(np.int32)
            cv2.fillConvexPoly(mask, pts, 1, cv2.LINE_8, 4)
        out[owner] = int(np.count_nonzero(mask))
    return out


def clip_near(poly: np.ndarray) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a (k, 3) polygon to z >= NEAR_M (None when fully behind)."""
    z = poly[:, 2]
    if np.all(z >= NEAR_M):
        return poly
    if np.all(z < NEAR_M):
        return None
    out = []
    k = len(poly)
    for i in range(k):
        p, q = poly[i], poly[(i + 1) % k]
        pin, qin = p[2] >= NEAR_M, q[2] >= NEAR_M
        if pin:
            out.append(p)
        if pin != qin:
            t = (NEAR_M - p[2]) / (q[2] - p[2])
            out.append(p + (q - p) * t)
    return np.array(out) if len(out) >= 3 else None
