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
from fastdrive_ros.data.synth.raster import NEAR_M, clip_near, draw_batch, draw_dense
from fastdrive_ros.data.synth.textures import TILE, MaterialSet

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
            draw_batch(
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
                    poly = clip_near(vc[f])
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
                    draw_dense(
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
