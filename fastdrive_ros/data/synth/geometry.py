"""Dense 2-D paths (roads, lanes, routes): arc length, headings, curvature, offsets, projection.

Everything that moves in the synthetic world moves along a `Polyline`; sampling it at an arc length
gives a position and a heading, so agents and the ego car stay exactly on smooth lane geometry.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

STEP_M = 0.5  # default spacing of path samples


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def hermite(
    p0: np.ndarray, d0: np.ndarray, p1: np.ndarray, d1: np.ndarray, n: int = 64
) -> np.ndarray:
    """(n, 2) points of the cubic Hermite curve from p0 (tangent d0) to p1 (tangent d1)."""
    u = np.linspace(0.0, 1.0, n)[:, None]
    h00 = 2 * u**3 - 3 * u**2 + 1
    h10 = u**3 - 2 * u**2 + u
    h01 = -2 * u**3 + 3 * u**2
    h11 = u**3 - u**2
    return h00 * p0 + h10 * d0 + h01 * p1 + h11 * d1


def resample(points: np.ndarray, step: float = STEP_M) -> np.ndarray:
    """(M, 2) points at (almost) equal arc-length spacing `step`, keeping both end points."""
    pts = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    pts = pts[keep]
    if len(pts) < 2:
        raise ValueError("a path needs at least two distinct points")
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    n = max(2, int(np.ceil(s[-1] / step)) + 1)
    s_new = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(s_new, s, pts[:, 0]), np.interp(s_new, s, pts[:, 1])], axis=1)


class Polyline:
    """A dense 2-D path with cumulative arc length, headings and signed curvature.

    Args:
        points: (N, 2) metres, N >= 2, consecutive points distinct (use `resample` first).
    """

    def __init__(self, *, points: np.ndarray) -> None:
        xy = np.asarray(points, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) < 2:
            raise ValueError(f"points must be (N>=2, 2), got {xy.shape}")
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        if np.any(seg <= 1e-9):
            raise ValueError("consecutive path points must be distinct")
        self.xy = xy
        self.s = np.concatenate([[0.0], np.cumsum(seg)])
        d = np.gradient(xy, self.s, axis=0)
        self.heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        self.curvature = np.gradient(self.heading, self.s) if len(xy) > 2 else np.zeros(len(xy))
        self._s_list = self.s.tolist()
        self._xy_list = self.xy.tolist()
        self._h_list = self.heading.tolist()

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def __len__(self) -> int:
        return len(self.xy)

    def sample(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Positions (..., 2) and headings (...) at arc lengths `s` (clamped to the path)."""
        s_arr = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.s[-1])
        x = np.interp(s_arr, self.s, self.xy[:, 0])
        y = np.interp(s_arr, self.s, self.xy[:, 1])
        return np.stack([x, y], axis=-1), np.interp(s_arr, self.s, self.heading)

    def sample_one(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at one arc length (clamped); the fast scalar path of `sample`."""
        sl = self._s_list
        if s <= 0.0:
            return (*self._xy_list[0], self._h_list[0])
        if s >= sl[-1]:
            return (*self._xy_list[-1], self._h_list[-1])
        i = bisect_right(sl, s) - 1
        f = (s - sl[i]) / (sl[i + 1] - sl[i])
        (x0, y0), (x1, y1) = self._xy_list[i], self._xy_list[i + 1]
        h0, h1 = self._h_list[i], self._h_list[i + 1]
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0), h0 + f * (h1 - h0)

    def normals(self) -> np.ndarray:
        """(N, 2) unit left normals."""
        return np.stack([-np.sin(self.heading), np.cos(self.heading)], axis=1)

    def offset(self, lateral: float | np.ndarray) -> Polyline:
        """The path shifted `lateral` metres to the left (per point when an array)."""
        d = np.broadcast_to(np.asarray(lateral, dtype=np.float64), (len(self),))
        return Polyline(points=resample(self.xy + self.normals() * d[:, None]))

    def reversed(self) -> Polyline:
        return Polyline(points=self.xy[::-1].copy())

    def slice(self, s0: float, s1: float) -> Polyline:
        """Sub-path between arc lengths s0 < s1."""
        s0, s1 = max(0.0, s0), min(self.length, s1)
        if s1 - s0 < 1e-3:
            raise ValueError(f"empty slice [{s0}, {s1}] of a {self.length:.1f} m path")
        inner = (self.s > s0) & (self.s < s1)
        ends = self.sample(np.array([s0, s1]))[0]
        return Polyline(points=resample(np.vstack([ends[:1], self.xy[inner], ends[1:]])))

    def project(
        self, point: np.ndarray, lo: int = 0, hi: int | None = None
    ) -> tuple[float, float]:
        """(arc length, signed lateral offset, left positive) of the closest point in [lo, hi)."""
        hi = len(self) if hi is None else hi
        lo, hi = max(0, lo), min(len(self), max(hi, lo + 2))
        a, b = self.xy[lo : hi - 1], self.xy[lo + 1 : hi]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.einsum("ij,ij->i", ab, ab), 0, 1)
        closest = a + ab * t[:, None]
        dist = np.linalg.norm(point - closest, axis=1)
        i = int(np.argmin(dist))
        s = self.s[lo + i] + t[i] * np.linalg.norm(ab[i])
        cross = ab[i, 0] * (point[1] - a[i, 1]) - ab[i, 1] * (point[0] - a[i, 0])
        return float(s), float(np.sign(cross) * dist[i])

    def index_at(self, s: float) -> int:
        """Index of the last sample at or before arc length s."""
        return min(max(bisect_right(self._s_list, s) - 1, 0), len(self._s_list) - 1)


def concat(parts: Sequence[Polyline]) -> Polyline:
    """Join paths end to start (joints closer than 1 cm are merged)."""
    pts = [parts[0].xy]
    for part in parts[1:]:
        gap = np.linalg.norm(part.xy[0] - pts[-1][-1])
        pts.append(part.xy[1:] if gap < 1e-2 else part.xy)
    return Polyline(points=resample(np.vstack(pts)))


def smoothstep(x: np.ndarray) -> np.ndarray:
    """C1 ramp from 0 (x <= 0) to 1 (x >= 1)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rect_corners(center: np.ndarray, yaw: float, length: float, width: float) -> np.ndarray:
    """(4, 2) corners of a yawed rectangle (length along yaw), counter-clockwise."""
    c, s = np.cos(yaw), np.sin(yaw)
    fx, fy = np.array([c, s]) * length / 2, np.array([-s, c]) * width / 2
    return np.array([center + fx - fy, center + fx + fy, center - fx + fy, center - fx - fy])
