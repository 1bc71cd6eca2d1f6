"""One camera, one pass: RGB image, per-pixel class, depth buffer and agent ids, exact occlusion.

The ground is flat (z = 0) and the ego car does not pitch or roll, so every pixel's ray hits the
ground at a point fixed in the ego frame: per frame the ground is one `cv2.remap` of the town's
pre-rasterised BEV map, with the ray depth as its z-buffer. Sky pixels read a panorama by world
azimuth. Then every visible quad is rasterised with a per-pixel depth from its plane (1/z is
linear in pixel coordinates) and a depth test, so occlusion is exact to the pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fastdrive_ros.data.cameras import CameraCalibration
from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.synth.meshes import FaceFrames, FaceSet
from fastdrive_ros.data.synth.textures import TILE, MaterialSet

NEAR_M = 0.2
SMALL_PX = 1024  # quads whose box is at most this many pixels go through the batch path
MAX_GROUND_M = 700.0
FOG_START_M = 60.0
FOG_SCALE_M = 500.0
SKY = CLASS_ID["sky"]
TERRAIN = CLASS_ID["terrain"]


@dataclass(frozen=True)
class GroundMap:
    """A town's ground as a BEV raster: pixel (row, col) covers x = x0 + col*res, y = y1 - row*res.

    Attributes:
        rgb: (H, W, 3) uint8; cls: (H, W) uint8 class ids.
        border_rgb: colour outside the raster (terrain).
    """

    rgb: np.ndarray
    cls: np.ndarray
    x0: float
    y1: float
    res: float
    border_rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Shading:
    """Per-scene lighting: sun direction (world, unit, pointing to the sun), ambient, fog."""

    sun: np.ndarray
    ambient: float
    diffuse: float
    fog_rgb: np.ndarray


@dataclass
class Frame:
    """One rendered image.

    Attributes:
        rgb: (H, W, 3) uint8; cls: (H, W) uint8 class ids.
        depth: (H, W) float32 optical z (inf for sky).
        inst: (H, W) int32 agent index + 1 (0 = not an agent).
    """

    rgb: np.ndarray
    cls: np.ndarray
    depth: np.ndarray
    inst: np.ndarray


class CameraRenderer:
    """Renders one calibrated camera mounted on a flat-driving ego car.

    Args:
        calibration: the camera (intrinsics for its image size, optical -> ego mounting).
    """

    def __init__(self, *, calibration: CameraCalibration) -> None:
        self.cal = calibration
        w, h = calibration.width, calibration.height
        k = calibration.intrinsic
        self.fx, self.fy, self.cx, self.cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        self.rot = calibration.rotation_matrix  # optical -> ego
        self.trans = np.asarray(calibration.translation, dtype=np.float64)
        self.u = np.arange(w, dtype=np.float64)
        self.v = np.arange(h, dtype=np.float64)
        rays = np.stack(
            np.broadcast_arrays(
                ((self.u - self.cx) / self.fx)[None, :],
                ((self.v - self.cy) / self.fy)[:, None],
                np.ones((1, 1)),
            ),
            axis=-1,
        )
        ego = rays @ self.rot.T
        down = ego[..., 2] < -1e-9
        t = np.where(down, -self.trans[2] / np.where(down, ego[..., 2], -1.0), np.inf)
        ground = down & (t < MAX_GROUND_M)
        rows = np.flatnonzero(ground.any(axis=1))
        self.g0 = int(rows[0]) if len(rows) else h
        sky_rows = np.flatnonzero((~ground).any(axis=1))
        self.s1 = int(sky_rows[-1]) + 1 if len(sky_rows) else 0
        g = slice(self.g0, h)
        self.ground_mask = ground[g]
        # Ground point in the ego frame as a homography of the pixel (rows from g0 on):
        # q = R K^-1 (u, v + g0, 1); ground = c - c_z q / q_z  ~  (c_x q_z - c_z q_x, ..., q_z).
        cx_t, cy_t, cz_t = self.trans
        lift = np.array([[-cz_t, 0.0, cx_t], [0.0, -cz_t, cy_t], [0.0, 0.0, 1.0]])
        rows_shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, self.g0], [0.0, 0.0, 1.0]])
        self.ground_h = lift @ self.rot @ np.linalg.inv(k) @ rows_shift
        self.depth0 = np.where(ground, t, np.inf).astype(np.float32)
        fog = np.where(ground, 1.0 - np.exp(-np.maximum(t - FOG_START_M, 0.0) / FOG_SCALE_M), 1.0)
        fog_rows = np.flatnonzero((fog[g] > 0.02).any(axis=1))
        self.fog_end = self.g0 + (int(fog_rows[-1]) + 1 if len(fog_rows) else 0)
        self.fog = fog[self.g0 : self.fog_end, :, None].astype(np.float32)
        s = slice(0, self.s1)
        horiz = np.hypot(ego[s, :, 0], ego[s, :, 1])
        self.sky_mask = ~ground[s]
        self.sky_az = np.arctan2(ego[s, :, 1], ego[s, :, 0]).astype(np.float32)
        self.sky_el = np.clip(np.arctan2(ego[s, :, 2], horiz), 0.0, np.pi / 2).astype(np.float32)
        self._sky_maps: tuple[int, int, np.ndarray, np.ndarray] | None = None  # fixed-point

    def camera_pose(self, ego_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(3,) camera centre and (3, 3) optical -> world rotation for ego pose (x, y, yaw)."""
        x, y, yaw = ego_pose
        c, s = np.cos(yaw), np.sin(yaw)
        rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return np.array([x, y, 0.0]) + rz @ self.trans, rz @ self.rot

    def _background(
        self, ego_pose: np.ndarray, ground: GroundMap, sky: np.ndarray, shading: Shading
    ) -> Frame:
        w, h = self.cal.width, self.cal.height
        x, y, yaw = ego_pose
        c, s = np.cos(yaw), np.sin(yaw)
        to_world = np.array([[c, -s, x], [s, c, y], [0.0, 0.0, 1.0]])
        to_bev = np.array(
            [
                [1.0 / ground.res, 0.0, -ground.x0 / ground.res],
                [0.0, -1.0 / ground.res, ground.y1 / ground.res],
                [0.0, 0.0, 1.0],
            ]
        )
        homog = to_bev @ to_world @ self.ground_h
        size = (w, h - self.g0)
        rgb = np.empty((h, w, 3), np.uint8)
        cls = np.empty((h, w), np.uint8)
        g0, s1 = self.g0, self.s1
        # Ground rows are warped straight into the frame (row blocks are contiguous).
        cv2.warpPerspective(
            ground.rgb,
            homog,
            size,
            dst=rgb[g0:],
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=ground.border_rgb,
        )
        cv2.warpPerspective(
            ground.cls,
            homog,
            size,
            dst=cls[g0:],
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=TERRAIN,
        )
        if self.fog_end > g0:
            band = rgb[g0 : self.fog_end].astype(np.float32)
            band += (shading.fog_rgb - band) * self.fog
            rgb[g0 : self.fog_end] = band.astype(np.uint8)
        cls[:g0] = SKY
        if s1 > 0:
            ph, pw = sky.shape[:2]
            if self._sky_maps is None or self._sky_maps[:2] != (ph, pw):
                sx = self.sky_az * np.float32(pw / (2 * np.pi))
                sy = (np.float32(1.0) - self.sky_el * np.float32(2 / np.pi)) * np.float32(ph - 1)
                fixed = cv2.convertMaps(sx, sy, cv2.CV_16SC2)
                self._sky_maps = (ph, pw, *fixed)
            _, _, map1, map2 = self._sky_maps
            # Turning the car turns the sky: roll the panorama (fixed maps stay valid).
            shift = int(round((yaw % (2 * np.pi)) * pw / (2 * np.pi))) % pw
            rolled = np.roll(sky, -shift, axis=1) if shift else sky
            sky_rgb = cv2.remap(rolled, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            rgb[:g0] = sky_rgb[:g0]
            if s1 > g0:  # rows with both: the horizon band
                skyish = ~self.ground_mask[: s1 - g0]
                cv2.copyTo(sky_rgb[g0:s1], skyish.view(np.uint8), rgb[g0:s1])
                cls[g0:s1][skyish] = SKY
        return Frame(rgb, cls, self.depth0.copy(), np.zeros((h, w), np.int32))

    def render(
        self,
        *,
        ego_pose: np.ndarray,
        ground: GroundMap,
        sky: np.ndarray,
        shading: Shading,
        faces: FaceSet,
        frames: FaceFrames,
        shade: np.ndarray,
        materials: MaterialSet,
        max_dist: float = 220.0,
        silhouettes: dict[int, list[np.ndarray]] | None = None,
    ) -> Frame:
        """Render at ego pose (x, y, yaw); `shade` (F, 3) is each face's colour multiplier.

        With `silhouettes`, the projected polygon of every agent face that faces the camera is
        appended under its owner, occluded or not (see `silhouette_areas`).
        """
        frame = self._background(np.asarray(ego_pose, np.float64), ground, sky, shading)
        if len(faces):
            self._draw_faces(
                frame, ego_pose, faces, frames, shade, materials, max_dist, silhouettes
            )
        return frame

    def _draw_faces(
        self,
        frame: Frame,
        ego_pose: np.ndarray,
        faces: FaceSet,
        frames: FaceFrames,
        shade: np.ndarray,
        materials: MaterialSet,
        max_dist: float,
        silhouettes: dict[int, list[np.ndarray]] | None,
    ) -> None:
        w, h = self.cal.width, self.cal.height
        centre, r_wc = self.camera_pose(ego_pose)
        vc = (faces.verts - centre) @ r_wc  # (F, 4, 3) optical frame
        n = frames.normal @ r_wc
        d = np.einsum("ij,ij->i", n, vc[:, 0])  # plane n.X = d; visible from origin iff d < 0
        z = vc[..., 2]
        x, y = vc[..., 0], vc[..., 1]
        keep = (d < -1e-6) & (z.max(axis=1) > NEAR_M) & (z.min(axis=1) < max_dist)
        fx, fy, cx, cy = self.fx, self.fy, self.cx, self.cy
        keep &= ~np.all(fx * x + (cx + 1.0) * z < 0, axis=1)
        keep &= ~np.all(fx * x + (cx - w) * z > 0, axis=1)
        keep &= ~np.all(fy * y + (cy + 1.0) * z < 0, axis=1)
        keep &= ~np.all(fy * y + (cy - h) * z > 0, axis=1)
        idx = np.flatnonzero(keep)
        if not len(idx):
            return
        zmin_all = z[idx].min(axis=1)
        order = np.argsort(zmin_all, kind="stable")
        idx, zmin_all = idx[order], zmin_all[order]
        # Projected bounding boxes (faces crossing the near plane are clipped in the loop).
        clipped = zmin_all < NEAR_M
        zs_safe = np.where(clipped[:, None], 1.0, z[idx])
        pu_all = fx * x[idx] / zs_safe + cx
        pv_all = fy * y[idx] / zs_safe + cy
        bx0 = np.clip(np.floor(pu_all.min(axis=1)), 0, w).astype(np.int64)
        bx1 = np.clip(np.ceil(pu_all.max(axis=1)) + 1, 0, w).astype(np.int64)
        by0 = np.clip(np.floor(pv_all.min(axis=1)), 0, h).astype(np.int64)
        by1 = np.clip(np.ceil(pv_all.max(axis=1)) + 1, 0, h).astype(np.int64)
        good = clipped | ((bx1 > bx0) & (by1 > by0))
        idx, zmin_all, clipped = idx[good], zmin_all[good], clipped[good]
        pu_all, pv_all = pu_all[good], pv_all[good]
        bx0, bx1, by0, by1 = bx0[good], bx1[good], by0[good], by1[good]
        if not len(idx):
            return
        # Texture coordinates are projective in the pixel grid: s = z * (a u + b v + c) - k.
        o_c = (frames.origin[idx] - centre) @ r_wc
        axes = np.stack([frames.e_s[idx] @ r_wc, frames.e_t[idx] @ r_wc], axis=1)  # (K, 2, 3)
        axes *= frames.scale[idx][:, :, None]
        tex_a = (axes[..., 0] / fx).astype(np.float32)
        tex_b = (axes[..., 1] / fy).astype(np.float32)
        tex_c = (axes[..., 2] - axes[..., 0] / fx * cx - axes[..., 1] / fy * cy).astype(np.float32)
        tex_k = np.einsum("kij,kj->ki", axes, o_c)
        # 1/z is linear in (u, v): 1/z = (a u + b v + c) / d.
        nk = n[idx]
        inv_d = 1.0 / d[idx]
        za = nk[:, 0] / fx * inv_d
        zb = nk[:, 1] / fy * inv_d
        zc = (nk[:, 2] - nk[:, 0] / fx * cx - nk[:, 1] / fy * cy) * inv_d
        # Texture coordinates as a homography of the pixel: (s, t, 1) ~ H (u, v, 1).
        homog = np.empty((len(idx), 3, 3))
        plane = np.stack([za, zb, zc], axis=1)
        homog[:, 0] = np.stack([tex_a[:, 0], tex_b[:, 0], tex_c[:, 0]], 1) - tex_k[:, :1] * plane
        homog[:, 1] = np.stack([tex_a[:, 1], tex_b[:, 1], tex_c[:, 1]], 1) - tex_k[:, 1:] * plane
        homog[:, 2] = plane
        tex_k = tex_k.astype(np.float32)
        za, zb, zc = za.astype(np.float32), zb.astype(np.float32), zc.astype(np.float32)
        flat_tiles = materials.tiles.reshape(-1, 3)
        mats = faces.mat[idx]
        fit = materials.fits(mats).tolist()
        owners = faces.owner[idx]
        classes = faces.cls[idx]
        shades = shade[idx]
        uf = self.u.astype(np.float32)
        vf = self.v.astype(np.float32)
        depth, cls_buf, inst_buf, rgb = frame.depth, frame.cls, frame.inst, frame.rgb
        bounds = np.stack([bx0, bx1, by0, by1], axis=1).tolist()
        zmins = zmin_all.tolist()
        clip_flags = clipped.tolist()
        inv_near = np.float32(1.0 / NEAR_M)
        tile_px = TILE * TILE
        # Small quads are rasterised together, vectorised (exact: a z-buffer is order-free);
        # big, near-clipped and silhouette-tracked ones one by one below.
        area = (bx1 - bx0) * (by1 - by0)
        small = ~clipped & (area <= SMALL_PX)
        if silhouettes is not None:
            small &= owners < 0
        if small.any():
            k = np.flatnonzero(small)
            _draw_batch(
                frame,
                pu_all[k],
                pv_all[k],
                bx0[k],
                bx1[k],
                by0[k],
                by1[k],
                np.stack([za[k], zb[k], zc[k]], axis=1),
                tex_a[k],
                tex_b[k],
                tex_c[k],
                tex_k[k],
                mats[k],
                np.asarray(fit)[k],
                classes[k],
                owners[k],
                shades[k],
                flat_tiles,
            )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for j in np.flatnonzero(~small).tolist():
                f = int(idx[j])
                if clip_flags[j]:
                    poly = _clip_near(vc[f])
                    if poly is None:
                        continue
                    pu = fx * poly[:, 0] / poly[:, 2] + cx
                    pv = fy * poly[:, 1] / poly[:, 2] + cy
                    x0, x1 = max(int(np.floor(pu.min())), 0), min(int(np.ceil(pu.max())) + 1, w)
                    y0, y1 = max(int(np.floor(pv.min())), 0), min(int(np.ceil(pv.max())) + 1, h)
                    if x1 <= x0 or y1 <= y0:
                        continue
                else:
                    pu, pv = pu_all[j], pv_all[j]
                    x0, x1, y0, y1 = bounds[j]
                zview = depth[y0:y1, x0:x1]
                if silhouettes is None or owners[j] < 0:
                    if zview.max() < zmins[j]:
                        continue  # everything in the box is already nearer: fully hidden
                mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
                pts = ((np.stack([pu - x0, pv - y0], axis=1)) * 16 + 0.5).astype(np.int32)
                cv2.fillConvexPoly(mask, pts, 1, cv2.LINE_8, 4)
                if silhouettes is not None and owners[j] >= 0:
                    silhouettes.setdefault(int(owners[j]), []).append(np.stack([pu, pv], axis=1))
                inv_z = (uf[x0:x1] * za[j])[None, :] + (vf[y0:y1] * zb[j] + zc[j])[:, None]
                sel = mask.view(bool) & (inv_z * zview > 1.0) & (inv_z < inv_near)
                count = int(np.count_nonzero(sel))
                if not count:
                    continue
                if count * 3 > sel.size:  # mostly visible: dense per-box work is cheaper
                    _dense(
                        frame,
                        (y0, y1, x0, x1),
                        sel,
                        inv_z,
                        homog[j],
                        materials.tiles[mats[j]],
                        fit[j],
                        classes[j],
                        owners[j],
                        shades[j],
                    )
                    continue
                ys, xs = np.nonzero(sel)
                zs = 1.0 / inv_z[ys, xs]
                zview[ys, xs] = zs
                cls_buf[y0:y1, x0:x1][ys, xs] = classes[j]
                inst_buf[y0:y1, x0:x1][ys, xs] = owners[j] + 1
                us = uf[xs + x0]
                vs = vf[ys + y0]
                ts = zs * (tex_a[j, 0] * us + tex_b[j, 0] * vs + tex_c[j, 0]) - tex_k[j, 0]
                tt = zs * (tex_a[j, 1] * us + tex_b[j, 1] * vs + tex_c[j, 1]) - tex_k[j, 1]
                if fit[j]:
                    ti = np.clip(ts, 0, TILE - 1).astype(np.int32)
                    tj = np.clip(tt, 0, TILE - 1).astype(np.int32)
                else:
                    ti = np.floor(ts).astype(np.int32) & (TILE - 1)
                    tj = np.floor(tt).astype(np.int32) & (TILE - 1)
                mat = int(mats[j])
                lin = tj * TILE + ti
                color = np.minimum(flat_tiles[lin + mat * tile_px] * shades[j], 255.0).astype(
                    np.uint8
                )
                rgb[y0:y1, x0:x1][ys, xs] = color


def _dense(
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


def _draw_batch(
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


def _clip_near(poly: np.ndarray) -> np.ndarray | None:
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
