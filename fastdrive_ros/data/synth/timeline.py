"""Camera timing of a scene and interpolation of simulated states at any camera's own time.

12 Hz sweeps; every 6th frame is a 2 Hz keyframe.

Like nuScenes, the cameras of one frame do not fire together: CAM_FRONT first, then clockwise
around the car, tens of milliseconds apart (plus a deterministic +-1 ms jitter); every image has
its own timestamp, ego pose and agent positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES

FRAME_HZ = 12.0
KEYFRAME_EVERY = 6  # 12 Hz / 6 = 2 Hz
KEYFRAME_DT = KEYFRAME_EVERY / FRAME_HZ
CAMERA_OFFSET_S = {
    "CAM_FRONT": 0.0,
    "CAM_FRONT_RIGHT": 0.008,
    "CAM_BACK_RIGHT": 0.017,
    "CAM_BACK": 0.025,
    "CAM_BACK_LEFT": 0.033,
    "CAM_FRONT_LEFT": 0.042,
}


def keyframe_count(seconds: float) -> int:
    """Keyframes of a scene of `seconds` (2 Hz, the first at t = 0)."""
    return int(np.floor(seconds / KEYFRAME_DT + 1e-9))


@dataclass(frozen=True)
class Timeline:
    """Frame and image times of one scene.

    Attributes:
        frame_t: (K,) frame times, seconds from scene start.
        keyframe: (K,) True on 2 Hz keyframes.
        cam_t: (K, 6) each camera's capture time (CAMERA_NAMES order), seconds.
        utime: (K, 6) the same in integer microseconds (dataset clock).
    """

    frame_t: np.ndarray
    keyframe: np.ndarray
    cam_t: np.ndarray
    utime: np.ndarray
    base_utime: int

    @property
    def end(self) -> float:
        return float(self.cam_t.max())


def make_timeline(
    seconds: float, base_utime: int, rng: np.random.Generator, sweeps: bool
) -> Timeline:
    """Frames from t = 0 to the last keyframe (only keyframes when not `sweeps`)."""
    n_key = keyframe_count(seconds)
    k = np.arange((n_key - 1) * KEYFRAME_EVERY + 1)
    if not sweeps:
        k = k[k % KEYFRAME_EVERY == 0]
    frame_t = k / FRAME_HZ
    offsets = np.array([CAMERA_OFFSET_S[c] for c in CAMERA_NAMES])
    jitter = rng.uniform(-0.001, 0.001, (len(k), len(CAMERA_NAMES)))
    jitter[:, CAMERA_NAMES.index("CAM_FRONT")] = 0.0
    cam_t = frame_t[:, None] + offsets[None, :] + jitter
    utime = base_utime + np.round(cam_t * 1e6).astype(np.int64)
    return Timeline(frame_t, k % KEYFRAME_EVERY == 0, cam_t, utime, int(base_utime))


def interp_track(t0: float, dt: float, values: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation along axis -2 of `values` (..., T, D) sampled at t0 + i dt."""
    x = (t - t0) / dt
    i = int(np.clip(np.floor(x), 0, values.shape[-2] - 2))
    f = float(np.clip(x - i, 0.0, 1.0))
    return values[..., i, :] * (1.0 - f) + values[..., i + 1, :] * f


def interp_mask(t0: float, dt: float, mask: np.ndarray, t: float) -> np.ndarray:
    """Boolean (..., T) mask at time t: True only when both neighbouring samples are True."""
    x = (t - t0) / dt
    i = int(np.clip(np.floor(x), 0, mask.shape[-1] - 2))
    return mask[..., i] & mask[..., i + 1]
