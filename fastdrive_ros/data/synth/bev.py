"""The town's ground as a textured bird's-eye raster (RGB + class), and the map-mask PNG.

Cameras sample this raster through their fixed ground rays (render.py), so road texture, lane
markings, stop lines, zebra stripes, sidewalks and grass all come from here, with their exact
classes. 0.1 m per pixel, origin at the town's south-west corner (nuScenes map convention).
"""

from __future__ import annotations

import cv2
import numpy as np
from shapely.geometry import Polygon

from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.geometry import Polyline
from fastdrive_ros.data.synth.render import GroundMap
from fastdrive_ros.data.synth.roads import STOP_LINE_BACK
from fastdrive_ros.data.synth.town import Town, strip

RES = 0.1
SHIFT = 3  # sub-pixel bits for cv2 polygon fills
TERRAIN_RGB = (92, 118, 62)
ASPHALT_RGB = (88, 88, 92)
SIDEWALK_RGB = (168, 164, 156)
WHITE = (228, 228, 222)
YELLOW = (225, 185, 40)
MARKING_W = 0.15


PALETTE = {
    "terrain": TERRAIN_RGB,
    "sidewalk": SIDEWALK_RGB,
    "asphalt": ASPHALT_RGB,
    "white": WHITE,
    "yellow": YELLOW,
}
PAINT_ID = {name: i for i, name in enumerate(PALETTE)}


class _Canvas:
    """Two single-channel rasters (paint id and class id); colours are applied once at the end."""

    def __init__(self, width_m: float, height_m: float) -> None:
        self.h = int(np.ceil(height_m / RES))
        self.w = int(np.ceil(width_m / RES))
        self.y1 = self.h * RES
        self.paint = np.full((self.h, self.w), PAINT_ID["terrain"], np.uint8)
        self.cls = np.full((self.h, self.w), CLASS_ID["terrain"], np.uint8)

    def pix(self, ring: np.ndarray) -> np.ndarray:
        ring = np.asarray(ring, dtype=np.float64)
        px = np.stack([ring[:, 0] / RES, (self.y1 - ring[:, 1]) / RES], axis=1)
        return np.round(px * (1 << SHIFT)).astype(np.int32)

    def fill(self, rings: list[np.ndarray], paint: str, cls: str) -> None:
        # One call per ring: a multi-contour fillPoly would leave overlaps empty (even-odd).
        for ring in rings:
            pts = [self.pix(ring)]
            cv2.fillPoly(self.paint, pts, PAINT_ID[paint], cv2.LINE_8, SHIFT)
            cv2.fillPoly(self.cls, pts, CLASS_ID[cls], cv2.LINE_8, SHIFT)


def _rings(poly: Polygon) -> list[np.ndarray]:
    """Exterior and holes; holes are drawn afterwards by the caller's layer order."""
    parts = getattr(poly, "geoms", [poly])
    return [np.asarray(p.exterior.coords) for p in parts if not p.is_empty]


def _dashes(
    line: Polyline, s0: float, s1: float, offset: float, dash: float, gap: float
) -> list[np.ndarray]:
    out = []
    s = s0
    while s < s1:
        e = min(s + dash, s1)
        if e - s > 0.2:
            out.append(strip(line, s, e, offset - MARKING_W / 2, offset + MARKING_W / 2))
        s += dash + gap
    return out


def rasterise(town: Town, rng: np.random.Generator) -> GroundMap:
    """Ground raster of the whole town canvas."""
    net = town.network
    cv = _Canvas(*town.canvas)
    cv.fill([r for w in town.walkways for r in _rings(w)], "sidewalk", "sidewalk")
    cv.fill([r for c in town.carparks for r in _rings(c.polygon)], "asphalt", "road")
    roads = [strip(e.centre, 0.0, e.centre.length, -e.half_width, e.half_width) for e in net.edges]
    cv.fill(roads + [r for n in net.nodes for r in _rings(n.drivable())], "asphalt", "road")

    white: list[np.ndarray] = []
    yellow: list[np.ndarray] = []
    for e in net.edges:
        line, hw, length = e.centre, e.half_width, e.centre.length
        a_sig, b_sig = net.nodes[e.a].signalised, net.nodes[e.b].signalised
        s0 = STOP_LINE_BACK if a_sig else 0.0
        s1 = length - (STOP_LINE_BACK if b_sig else 0.0)
        gaps = [
            (c.s - c.width / 2 - 1.0, c.s + c.width / 2 + 1.0)
            for c in town.crossings
            if c.edge == e.id and c.kind == "zebra"
        ]
        for lo, hi in _split(s0, s1, gaps):
            for side in (-1, 1):
                yellow.append(
                    strip(line, lo, hi, side * 0.15 - MARKING_W / 2, side * 0.15 + MARKING_W / 2)
                )
                if e.lanes_per_dir == 2:
                    white += _dashes(line, lo, hi, side * 3.5, 3.0, 6.0)
            for side in (-1, 1):
                off = side * (hw - 0.3)
                white.append(strip(line, lo, hi, off - MARKING_W / 2, off + MARKING_W / 2))
    white += [s.polygon for s in town.stop_lines]
    for c in town.carparks:
        for x, y, yaw in c.slots:
            d = np.array([np.cos(yaw), np.sin(yaw)])
            n = np.array([-d[1], d[0]])
            for side in (-1.35, 1.35):
                a = np.array([x, y]) + n * side - d * 2.6
                b = np.array([x, y]) + n * side + d * 2.4
                white.append(np.array([a - n * 0.06, b - n * 0.06, b + n * 0.06, a + n * 0.06]))
    cv.fill(white, "white", "lane_marking")
    cv.fill(yellow, "yellow", "lane_marking")
    for c in town.crossings:
        cv.fill([c.polygon], "asphalt", "crossing")
        e = net.edges[c.edge]
        hw = e.half_width
        stripes = [
            strip(e.centre, c.s - c.width / 2, c.s + c.width / 2, d, d + 0.5)
            for d in np.arange(-hw + 0.25, hw - 0.3, 1.0)
        ]
        cv.fill(stripes, "white", "crossing")
    return GroundMap(_colour(cv, rng), cv.cls, 0.0, cv.y1, RES, TERRAIN_RGB)


def _split(s0: float, s1: float, gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out, lo = [], s0
    for g0, g1 in sorted(gaps):
        if g0 > lo:
            out.append((lo, min(g0, s1)))
        lo = max(lo, g1)
    if lo < s1:
        out.append((lo, s1))
    return out


def _colour(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """RGB raster from the paint ids, with grain, wear and paving joints.

    Palette colour per paint id, a tiled noise (~100 m period) and paving joints on sidewalks,
    in saturating OpenCV arithmetic.
    """
    h, w = cv.h, cv.w
    n = 1024
    coarse = rng.normal(0.0, 9.0, (16, 16)).astype(np.float32)
    coarse = cv2.resize(np.tile(coarse, (3, 3)), (3 * n, 3 * n), interpolation=cv2.INTER_CUBIC)
    tile = rng.normal(0.0, 7.0, (n, n)).astype(np.float32) + coarse[n : 2 * n, n : 2 * n]
    noise = cv2.repeat(np.round(tile).astype(np.int16), h // n + 1, w // n + 1)[:h, :w]
    joints = np.zeros((12, 12), np.uint8)
    joints[0, :] = joints[:, 0] = 1
    joints = cv2.repeat(joints, h // 12 + 1, w // 12 + 1)[:h, :w].view(bool)
    np.subtract(noise, 28, out=noise, where=joints & (cv.paint == PAINT_ID["sidewalk"]))
    planes = []
    for ch in range(3):
        lut = np.zeros(256, np.uint8)
        for name, rgb in PALETTE.items():
            lut[PAINT_ID[name]] = rgb[ch]
        planes.append(cv2.add(cv2.LUT(cv.paint, lut), noise, dtype=cv2.CV_8U))
    return cv2.merge(planes)


def drivable_mask(ground: GroundMap) -> np.ndarray:
    """uint8 map-mask image (255 = drivable surface) in nuScenes' MapMask layout (10 px/m)."""
    drivable = np.isin(
        ground.cls, [CLASS_ID["road"], CLASS_ID["lane_marking"], CLASS_ID["crossing"]]
    )
    return np.where(drivable, 255, 0).astype(np.uint8)
