"""Procedural texture tiles for every face material (buildings, foliage, vehicles, signs, lights).

Textures make the background real clutter (window grids, foliage noise) so that a token pruner has
something to throw away, and make foreground objects recognisable (wheels, windscreens, lamps,
sign faces). All tiles are drawn once from a fixed seed: deterministic and cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TILE = 128  # pixels per tile side


@dataclass(frozen=True)
class MaterialSet:
    """All tiles in one array so a face lookup is a single fancy index.

    Attributes:
        tiles: (M, TILE, TILE, 3) uint8 RGB.
        tile_m: (M, 2) tile size in metres (s, t) for repeating materials; 0 = stretch to fit.
        ids: name -> material id.
    """

    tiles: np.ndarray
    tile_m: np.ndarray
    ids: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.ids[name]

    def fits(self, mat: np.ndarray) -> np.ndarray:
        return self.tile_m[mat, 0] <= 0


def _noise(rng: np.random.Generator, size: int, scale: int, amp: float) -> np.ndarray:
    """Smooth value noise in [-amp, amp], (size, size) float32."""
    small = rng.uniform(-1.0, 1.0, (max(2, size // scale),) * 2).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC) * amp


def _base(
    rng: np.random.Generator, color: tuple[int, int, int], amp: float = 10.0, scale: int = 8
) -> np.ndarray:
    tile = np.empty((TILE, TILE, 3), np.float32)
    tile[:] = color
    tile += _noise(rng, TILE, scale, amp)[..., None]
    tile += rng.normal(0.0, amp * 0.3, (TILE, TILE, 1)).astype(np.float32)
    return tile


def _facade(
    rng: np.random.Generator,
    wall: tuple[int, int, int],
    glass: tuple[int, int, int],
    bays: int,
    floors: int,
    win_w: float,
    win_h: float,
) -> np.ndarray:
    tile = _base(rng, wall, 12.0, 16)
    bw, fh = TILE / bays, TILE / floors
    for f in range(floors):
        for b in range(bays):
            x0 = int(b * bw + bw * (1 - win_w) / 2)
            y0 = int(f * fh + fh * (1 - win_h) / 2)
            x1, y1 = int(x0 + bw * win_w), int(y0 + fh * win_h)
            lit = rng.random() < 0.2
            g = np.array(glass, np.float32) * (1.6 if lit else rng.uniform(0.7, 1.15))
            tile[y0:y1, x0:x1] = g + rng.normal(0, 6, (y1 - y0, x1 - x0, 1))
            tile[y0 : y0 + 2, x0:x1] *= 0.6
            tile[y1 - 2 : y1, x0:x1] = np.array(wall) * 0.75
    return tile


def _circle(tile: np.ndarray, cx: float, cy: float, r: float, color, thickness: int = -1) -> None:
    cv2.circle(tile, (int(cx * 16), int(cy * 16)), int(r * 16), color, thickness, cv2.LINE_AA, 4)


def _sign(kind: str) -> np.ndarray:
    tile = np.full((TILE, TILE, 3), 235, np.float32)
    if kind.startswith("speed"):
        tile[:] = 120
        _circle(tile, 64, 64, 62, (200, 20, 25))
        _circle(tile, 64, 64, 48, (245, 245, 245))
        text = kind[5:]
        cv2.putText(
            tile, text, (26, 84), cv2.FONT_HERSHEY_SIMPLEX, 1.9, (20, 20, 20), 6, cv2.LINE_AA
        )
    elif kind == "ped":
        tile[:] = (30, 80, 200)
        pts = np.array([[64, 18], [112, 108], [16, 108]], np.int32)
        cv2.fillConvexPoly(tile, pts, (245, 245, 245), cv2.LINE_AA)
        cv2.circle(tile, (64, 52), 8, (20, 20, 20), -1, cv2.LINE_AA)
        cv2.line(tile, (64, 60), (58, 88), (20, 20, 20), 6, cv2.LINE_AA)
        cv2.line(tile, (58, 88), (46, 102), (20, 20, 20), 5, cv2.LINE_AA)
        cv2.line(tile, (58, 88), (72, 102), (20, 20, 20), 5, cv2.LINE_AA)
    elif kind == "noparking":
        tile[:] = 120
        _circle(tile, 64, 64, 62, (200, 20, 25))
        _circle(tile, 64, 64, 48, (30, 70, 190))
        cv2.line(tile, (30, 30), (98, 98), (200, 20, 25), 12, cv2.LINE_AA)
    elif kind == "arrow":
        tile[:] = (30, 80, 200)
        cv2.arrowedLine(tile, (64, 110), (64, 22), (245, 245, 245), 14, cv2.LINE_AA, 0, 0.45)
    elif kind == "warning":
        tile[:] = 120
        pts = np.array([[64, 6], [124, 118], [4, 118]], np.int32)
        cv2.fillConvexPoly(tile, pts, (200, 20, 25), cv2.LINE_AA)
        pts = np.array([[64, 30], [104, 106], [24, 106]], np.int32)
        cv2.fillConvexPoly(tile, pts, (245, 245, 245), cv2.LINE_AA)
        cv2.putText(tile, "!", (54, 98), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (20, 20, 20), 6)
    return tile


def _traffic_light(lit: int) -> np.ndarray:
    """Housing front with red, yellow, green lamps top to bottom; `lit` is 0..2 or -1 (off)."""
    tile = np.full((TILE, TILE, 3), 28, np.float32)
    colors = [(255, 40, 30), (255, 190, 20), (40, 235, 90)]
    for i, color in enumerate(colors):
        cy = 22 + i * 42
        _circle(tile, 64, cy, 19, (10, 10, 10))
        lamp = color if i == lit else tuple(int(c * 0.16) + 20 for c in color)
        _circle(tile, 64, cy, 16, lamp)
    return tile


def _vehicle_side(rng: np.random.Generator, wheels: int) -> np.ndarray:
    tile = _base(rng, (215, 215, 215), 4.0, 32)
    tile[96:, :] *= 0.85
    cv2.line(tile, (64, 8), (64, 100), (150, 150, 150), 1)
    xs = [22, 106] if wheels == 2 else [16, 34, 104]
    for x in xs:
        _circle(tile, x, 112, 15, (25, 25, 25))
        _circle(tile, x, 112, 7, (120, 120, 120))
    return tile


def build_materials() -> MaterialSet:
    """Every material the world uses, drawn once."""
    rng = np.random.default_rng(20240607)
    tiles: list[np.ndarray] = []
    sizes: list[tuple[float, float]] = []
    ids: dict[str, int] = {}

    def add(name: str, tile: np.ndarray, size: tuple[float, float] = (0.0, 0.0)) -> None:
        ids[name] = len(tiles)
        tiles.append(np.clip(tile, 0, 255).astype(np.uint8))
        sizes.append(size)

    facades = [
        ((205, 190, 160), (70, 90, 110), 4, 3, 0.5, 0.55),
        ((160, 160, 165), (50, 70, 95), 4, 3, 0.6, 0.6),
        ((150, 75, 60), (60, 65, 80), 3, 3, 0.45, 0.55),
        ((230, 230, 225), (80, 110, 140), 4, 4, 0.55, 0.5),
        ((95, 120, 150), (40, 70, 110), 4, 4, 0.85, 0.8),
        ((90, 85, 80), (140, 150, 160), 3, 3, 0.5, 0.5),
        ((190, 170, 120), (60, 80, 90), 5, 3, 0.4, 0.5),
    ]
    for i, (wall, glass, bays, floors, ww, wh) in enumerate(facades):
        add(
            f"facade{i}",
            _facade(rng, wall, glass, bays, floors, ww, wh),
            (bays * 3.2, floors * 3.3),
        )
    add("roof", _base(rng, (120, 118, 112), 18.0, 4), (6.0, 6.0))
    add("bark", _base(rng, (85, 65, 45), 16.0, 4), (0.8, 1.5))
    for i, leaf in enumerate([(60, 110, 45), (45, 90, 40), (85, 120, 50)]):
        foliage = _base(rng, leaf, 28.0, 6)
        foliage += _noise(rng, TILE, 24, 20.0)[..., None]
        add(f"foliage{i}", foliage, (2.5, 2.5))
    add("bush", _base(rng, (55, 95, 45), 26.0, 5), (1.5, 1.5))
    add("metal", _base(rng, (135, 140, 140), 6.0, 32), (0.5, 2.0))
    add("dark_metal", _base(rng, (45, 48, 50), 5.0, 32), (0.5, 2.0))
    add("paint", _base(rng, (215, 215, 215), 5.0, 32), (2.0, 1.0))
    add("car_side", _vehicle_side(rng, 2))
    add("truck_side", _vehicle_side(rng, 3))
    glass = _base(rng, (45, 55, 70), 8.0, 16)
    glass[:14] = glass[-10:] = 200
    glass[:, :10] = glass[:, -10:] = 200
    add("cabin_side", glass)
    add("windscreen", _base(rng, (55, 65, 80), 10.0, 8))
    front = _base(rng, (200, 200, 200), 4.0, 32)
    front[70:100, 30:98] = 40
    _circle(front, 14, 60, 10, (250, 250, 230))
    _circle(front, 114, 60, 10, (250, 250, 230))
    add("car_front", front)
    back = _base(rng, (200, 200, 200), 4.0, 32)
    back[44:64, 4:28] = back[44:64, 100:124] = (200, 25, 25)
    back[80:100, 44:84] = (235, 235, 220)
    add("car_back", back)
    cargo = _base(rng, (225, 225, 220), 6.0, 16)
    cargo[40:60] = (40, 90, 170)
    add("cargo", cargo, (4.0, 3.0))
    bus = _base(rng, (210, 210, 210), 5.0, 32)
    bus[20:70] = np.array((40, 50, 65)) + rng.normal(0, 6, (50, TILE, 1))
    bus[20:70, ::16] = 200
    add("bus_side", bus, (3.0, 3.2))
    for i, shirt in enumerate(
        [
            (180, 40, 40),
            (40, 60, 150),
            (230, 230, 230),
            (50, 50, 50),
            (200, 170, 60),
            (60, 130, 70),
        ]
    ):
        add(f"shirt{i}", _base(rng, shirt, 10.0, 16))
    for i, trousers in enumerate([(40, 45, 70), (30, 30, 30), (120, 100, 80)]):
        add(f"trousers{i}", _base(rng, trousers, 8.0, 16))
    add("skin", _base(rng, (205, 165, 135), 6.0, 32))
    add("hair", _base(rng, (45, 35, 30), 6.0, 32))
    bike = np.full((TILE, TILE, 3), 60, np.float32)
    for x in (30, 98):
        _circle(bike, x, 92, 28, (20, 20, 20), 5)
    cv2.line(bike, (30, 92), (64, 60), (180, 30, 30), 5)
    cv2.line(bike, (64, 60), (98, 92), (180, 30, 30), 5)
    add("bicycle", bike)
    stripes = np.zeros((TILE, TILE, 3), np.float32)
    stripes[:] = (235, 235, 235)
    yy, xx = np.mgrid[:TILE, :TILE]
    stripes[((xx + yy) // 32) % 2 == 0] = (210, 30, 30)
    add("barrier", stripes, (1.0, 1.0))
    cone = _base(rng, (245, 110, 20), 8.0, 32)
    cone[40:70] = (240, 240, 240)
    add("cone", cone)
    for kind in ("speed30", "speed40", "speed50", "ped", "noparking", "arrow", "warning"):
        add(f"sign_{kind}", _sign(kind))
    add("sign_back", _base(rng, (150, 150, 150), 6.0, 32))
    for lit, name in enumerate(("red", "yellow", "green")):
        add(f"light_{name}", _traffic_light(lit))
    add("housing", _base(rng, (30, 32, 30), 4.0, 32))
    add("car_back_braking", _brake_lamps_lit(back))  # last: every other id stays as it was
    return MaterialSet(np.stack(tiles), np.array(sizes, np.float32), ids)


def _brake_lamps_lit(back: np.ndarray) -> np.ndarray:
    """A car's back with its brake lamps on.

    Larger, brighter tail lamps and a high centre lamp, so that a braking car ahead reads at the
    distances the front camera resolves.
    """
    lit = np.array(back, copy=True)
    lit[30:78, 0:40] = lit[30:78, 88:128] = (255, 40, 30)
    lit[0:18, 30:98] = (255, 40, 30)
    return lit


def sky_panorama(rng: np.random.Generator, width: int = 2048, height: int = 256) -> np.ndarray:
    """(height, width, 3) uint8 RGB sky from the horizon (bottom row) to the zenith (top row)."""
    elev = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None, None]
    zenith = np.array(rng.uniform([60, 110, 190], [110, 150, 230]), np.float32)
    horizon = np.array(rng.uniform([180, 195, 215], [225, 230, 240]), np.float32)
    sky = horizon + (zenith - horizon) * np.sqrt(elev)
    sky = np.broadcast_to(sky, (height, width, 3)).copy()
    cover = rng.uniform(0.05, 0.6)
    clouds = np.zeros((height, width), np.float32)
    for scale, amp in ((64, 1.0), (16, 0.5), (4, 0.25)):
        small = rng.uniform(0, 1, (max(2, height // scale), max(2, width // scale)))
        clouds += (
            cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
            * amp
        )
    clouds = np.clip((clouds / 1.75 - (1.0 - cover)) * 3.0, 0.0, 1.0)
    clouds *= np.clip(elev[..., 0] * 4.0 + 0.2, 0, 1)
    shade = rng.uniform(215, 250)
    sky = sky * (1 - clouds[..., None]) + shade * clouds[..., None]
    return np.clip(sky, 0, 255).astype(np.uint8)
