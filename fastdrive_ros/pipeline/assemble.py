"""Decode a synchronised frame's images and apply the missing-camera policy.

The anchor image sets the frame's resolution (or `input_width` x `input_height` when configured);
a camera whose image is missing, late, undecodable or of another size is replaced by its last good
image (policy "reuse_last", if not older than `reuse_max_age_ms`, else black), by a black image
("black"), or makes the whole frame drop ("skip"). An anchor image that cannot be decoded always
drops the frame: planning on a substitute front view is not acceptable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.counters import Counters
from fastdrive_ros.pipeline.decode import DecodeError, decode_frame, source_size
from fastdrive_ros.pipeline.log_throttle import ThrottledLog
from fastdrive_ros.pipeline.sync import SyncedFrame
from fastdrive_ros.pipeline.types import CameraFrameIn, CameraSlotReport

LOG = logging.getLogger("fastdrive_ros.pipeline")


@dataclass(frozen=True)
class AssembledFrame:
    """Decoded images in camera order and what was done for each camera.

    Attributes:
        images: [C, H, W, 3] uint8 RGB, cameras in `camera_names` order.
        cameras: channel -> CameraSlotReport.
    """

    images: np.ndarray
    cameras: dict[str, CameraSlotReport]


@dataclass(frozen=True)
class DroppedFrame:
    """The frame cannot be planned; `reason` is the counter name under dropped/."""

    reason: str
    detail: str
    cameras: dict[str, CameraSlotReport]


class FrameAssembler:
    """Decodes and substitutes; remembers each camera's last good image (bounded: one each)."""

    def __init__(
        self,
        *,
        config: PipelineConfig,
        counters: Counters,
        reduce_to: tuple[int, int] | None = None,
    ) -> None:
        # reduce_to (W, H): the model's input size; large JPEGs decode at a fraction of their
        # size but never below it (pipeline/decode.py: DCT-domain scaling)
        self._config = config
        self._reduce_to = reduce_to
        self._counters = counters
        self._last_good: dict[str, tuple[int, np.ndarray]] = {}
        self._reuse_ns = int(config.reuse_max_age_ms * 1e6)
        self._log = ThrottledLog(LOG)

    def reset(self) -> None:
        """Forget last good images (after a time jump they belong to another timeline)."""
        self._last_good.clear()

    def _decode(
        self, name: str, frame: CameraFrameIn, expected: tuple[int, int] | None
    ) -> np.ndarray | str:
        try:
            image = decode_frame(
                frame,
                max_bytes=self._config.max_image_bytes,
                expected=expected,
                reduce_to=self._reduce_to,
            )
        except DecodeError as exc:
            self._counters.inc(f"decode_failed/{exc.reason}")
            self._counters.inc(f"decode_failed/camera/{name}")
            self._log.warning(
                f"decode/{name}/{exc.reason}",
                "camera %s: image at %d unusable: %s",
                name,
                frame.stamp_ns,
                exc,
            )
            return f"decode: {exc}"
        self._counters.inc("decoded")
        return image

    def assemble(self, synced: SyncedFrame) -> AssembledFrame | DroppedFrame:
        """Decode every camera of `synced`, substituting per the policy."""
        config = self._config
        anchor = synced.anchor
        decoded = self._decode(anchor.channel, anchor, config.expected_size)
        if isinstance(decoded, str):
            report = {anchor.channel: CameraSlotReport("missing", 0.0, decoded)}
            return DroppedFrame("bad_anchor", f"{anchor.channel} {decoded}", report)
        height, width = decoded.shape[:2]
        size = (width, height)  # as decoded: what substitutes must match
        # the other cameras must SEND what the anchor sent (a reduced decode is smaller)
        sent = source_size(anchor) if self._reduce_to is not None else size
        images: list[np.ndarray] = []
        reports: dict[str, CameraSlotReport] = {}
        for name in config.camera_names:
            frame = synced.images.get(name)
            if frame is anchor:
                image: np.ndarray | str = decoded
            elif frame is None:
                image = synced.missing.get(name, "no image")
            else:
                image = self._decode(name, frame, sent)
            if isinstance(image, np.ndarray):
                self._last_good[name] = (frame.stamp_ns, image)
                offset = (frame.stamp_ns - anchor.stamp_ns) / 1e6
                reports[name] = CameraSlotReport("ok", offset, "")
                images.append(image)
                continue
            substitute = self._substitute(name, anchor.stamp_ns, size, image)
            if isinstance(substitute, CameraSlotReport):
                reports[name] = substitute
                return DroppedFrame("missing_camera", f"{name}: {image}", reports)
            report, pixels = substitute
            reports[name] = report
            images.append(pixels)
        return AssembledFrame(images=np.stack(images), cameras=reports)

    def _substitute(
        self, name: str, anchor_ns: int, size: tuple[int, int], reason: str
    ) -> tuple[CameraSlotReport, np.ndarray] | CameraSlotReport:
        policy = self._config.missing_camera
        if policy == "skip":
            return CameraSlotReport("missing", None, reason)
        width, height = size
        last = self._last_good.get(name)
        if policy == "reuse_last" and last is not None:
            stamp, image = last
            age_ns = anchor_ns - stamp
            if 0 <= age_ns <= self._reuse_ns and image.shape[:2] == (height, width):
                self._counters.inc("substituted/reused")
                text = f"{reason}; reused image {age_ns / 1e6:.0f} ms old"
                return CameraSlotReport("reused", -age_ns / 1e6, text), image
        self._counters.inc("substituted/black")
        return CameraSlotReport("black", None, reason), np.zeros((height, width, 3), np.uint8)
