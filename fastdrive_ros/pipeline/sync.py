"""Six-camera synchronisation anchored on the front camera, with bounded per-camera rings.

Policy (also in the README):
  * The anchor camera (the first of `camera_names`, CAM_FRONT) defines a frame: its stamp is the
    frame stamp. Every other camera contributes its image closest to that stamp if it is within
    `sync_tolerance_ms` (nuScenes cameras fire tens of ms apart). When that image is more than
    half a camera period before the anchor, the camera's next image would be closer, so the
    frame waits for it (up to the timeout).
  * A frame is *complete* when every camera has a match or has been given up: a camera is given
    up once `camera_timeout_ms` has passed since the anchor arrived (pipeline clock), or at once
    when its newest image is already past the tolerance window (it cannot deliver a match).
    Given-up cameras get the missing-camera policy in the pipeline (reuse_last / black / skip) and
    are reported (WARN, which camera, why, how old).
  * Latest-frame: `poll()` returns the newest complete frame; older pending anchors are dropped as
    "superseded" (counted). Rings hold `ring_size` images per camera; the oldest is evicted.
  * Time jumps of the anchor: a stamp more than `jump_back_ms` older than the previous anchor
    (bag loop, source restart) or more than `jump_forward_ms` newer resets the sync state
    (pending anchors dropped as "time_jump", images of the old timeline removed); a smaller step
    back (or a repeated stamp) is dropped as "out_of_order".
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.counters import Counters
from fastdrive_ros.pipeline.log_throttle import ThrottledLog
from fastdrive_ros.pipeline.types import ENCODINGS, CameraFrameIn

LOG = logging.getLogger("fastdrive_ros.pipeline")
PushResult = Literal["ok", "rejected", "out_of_order", "jump_back", "jump_forward"]


@dataclass(frozen=True)
class SyncedFrame:
    """An anchor and, per camera, the matched image or None with the reason it is missing.

    Attributes:
        anchor: the anchor camera's image (its stamp is the frame stamp).
        images: channel -> matched CameraFrameIn (anchor included) or None.
        missing: channel -> reason for the channels whose image is None.
    """

    anchor: CameraFrameIn
    images: dict[str, CameraFrameIn | None]
    missing: dict[str, str]

    @property
    def stamp_ns(self) -> int:
        return self.anchor.stamp_ns


class FrameSynchronizer:
    """Thread-safe: `push` from camera callbacks, `poll` from the processing thread."""

    def __init__(self, *, config: PipelineConfig, counters: Counters) -> None:
        self._config = config
        self._counters = counters
        self._tol_ns = int(config.sync_tolerance_ms * 1e6)
        self._timeout_ns = int(config.camera_timeout_ms * 1e6)
        self._half_period_ns = int(config.camera_period_ms * 1e6 / 2)
        self._back_ns = int(config.jump_back_ms * 1e6)
        self._forward_ns = int(config.jump_forward_ms * 1e6)
        self._rings: dict[str, deque[CameraFrameIn]] = {
            name: deque(maxlen=config.ring_size) for name in config.camera_names
        }
        self._last_stamp: dict[str, int] = {}
        self._last_reject: dict[str, str] = {}
        self._lock = threading.Lock()
        self._log = ThrottledLog(LOG)

    def push(self, frame: CameraFrameIn) -> PushResult:
        """Store an image (cheap: no decoding). Rejections and drops are counted, never raised."""
        config, counters = self._config, self._counters
        name = frame.channel
        is_anchor = name == config.anchor
        if name not in self._rings:
            counters.inc("rejected/unknown_camera")
            return "rejected"
        counters.inc(f"received/{name}")
        if is_anchor:
            counters.inc("frames/received")
        reason = self._input_problem(frame)
        if reason:
            counters.inc(f"rejected/{reason}")
            # counted AND said: an empty or oversized payload is as much a fault as a bad JPEG
            self._log.warning(
                f"rejected/{name}/{reason}",
                "camera %s: image at %d rejected before decoding: %s (%d bytes, encoding %r)",
                name,
                frame.stamp_ns,
                reason,
                frame.nbytes,
                frame.encoding,
            )
            with self._lock:
                self._last_reject[name] = reason
            if is_anchor:
                counters.inc("dropped/bad_anchor")
            return "rejected"
        with self._lock:
            ring = self._rings[name]
            last = self._last_stamp.get(name)
            result: PushResult = "ok"
            if last is not None and frame.stamp_ns <= last:
                if last - frame.stamp_ns <= self._back_ns:
                    counters.inc("dropped/out_of_order" if is_anchor else "rejected/out_of_order")
                    return "out_of_order"
                result = "jump_back"
            elif last is not None and frame.stamp_ns - last > self._forward_ns:
                result = "jump_forward"
            if result != "ok":
                if is_anchor:
                    counters.inc(f"time_jump/{result[5:]}")
                    self._reset_locked(frame.stamp_ns)
                else:  # only this camera restarted: forget its images of the old timeline
                    ring.clear()
                    result = "ok"
            if is_anchor and len(ring) == ring.maxlen:
                counters.inc("dropped/superseded")  # the oldest pending anchor is evicted
            ring.append(frame)
            self._last_stamp[name] = frame.stamp_ns
            self._last_reject.pop(name, None)
            return result

    def _input_problem(self, frame: CameraFrameIn) -> str:
        if frame.encoding not in ENCODINGS:
            return "encoding"
        size = frame.nbytes
        if size == 0:
            return "empty"
        if size > self._config.max_image_bytes:
            return "oversized"
        return ""

    def _reset_locked(self, new_stamp: int) -> None:
        """Forget the old timeline: pending anchors (counted) and other cameras' old images."""
        anchor_ring = self._rings[self._config.anchor]
        if anchor_ring:
            self._counters.inc("dropped/time_jump", len(anchor_ring))
            anchor_ring.clear()
        # Images this close to the new stamp belong to the new timeline (a camera that restarted
        # before the anchor did); everything else is from the old one.
        window = min(self._back_ns, self._forward_ns) // 2
        for name, ring in self._rings.items():
            if name == self._config.anchor:
                continue
            keep = [f for f in ring if abs(f.stamp_ns - new_stamp) <= window]
            ring.clear()
            ring.extend(keep)
            if keep:
                self._last_stamp[name] = keep[-1].stamp_ns
            else:
                self._last_stamp.pop(name, None)

    def pending(self) -> int:
        """Anchors waiting to be processed."""
        with self._lock:
            return len(self._rings[self._config.anchor])

    def queue_lengths(self) -> dict[str, int]:
        """Images stored per camera (each at most ring_size)."""
        with self._lock:
            return {name: len(ring) for name, ring in self._rings.items()}

    def last_rejects(self) -> dict[str, str]:
        """Per camera, why its last image was rejected (cleared by its next good image)."""
        with self._lock:
            return dict(self._last_reject)

    def poll(self, now_ns: int) -> SyncedFrame | None:
        """The newest complete frame (consumed), or None; older pending anchors are dropped."""
        with self._lock:
            anchors = list(self._rings[self._config.anchor])
            for position in range(len(anchors) - 1, -1, -1):
                matched = self._match_locked(anchors[position], now_ns)
                if matched is None:
                    continue
                anchor_ring = self._rings[self._config.anchor]
                for _ in range(position + 1):
                    anchor_ring.popleft()
                if position:
                    self._counters.inc("dropped/superseded", position)
                return matched
            return None

    def _match_locked(self, anchor: CameraFrameIn, now_ns: int) -> SyncedFrame | None:
        images: dict[str, CameraFrameIn | None] = {anchor.channel: anchor}
        missing: dict[str, str] = {}
        waited_out = now_ns - anchor.received_ns >= self._timeout_ns
        for name, ring in self._rings.items():
            if name == anchor.channel:
                continue
            best = min(ring, key=lambda f: abs(f.stamp_ns - anchor.stamp_ns), default=None)
            newest = ring[-1].stamp_ns if ring else None
            if best is not None and abs(best.stamp_ns - anchor.stamp_ns) <= self._tol_ns:
                # the camera's next image (one period later) would be closer: wait for it
                closer_coming = (
                    anchor.stamp_ns - best.stamp_ns > self._half_period_ns
                    and newest is not None
                    and newest < anchor.stamp_ns
                )
                if closer_coming and not waited_out:
                    return None
                images[name] = best
                continue
            can_arrive = newest is None or newest < anchor.stamp_ns + self._tol_ns
            if can_arrive and not waited_out:
                return None
            images[name] = None
            missing[name] = self._missing_reason(name, anchor, best)
        return SyncedFrame(anchor=anchor, images=images, missing=missing)

    def _missing_reason(
        self, name: str, anchor: CameraFrameIn, nearest: CameraFrameIn | None
    ) -> str:
        rejected = self._last_reject.get(name)
        if nearest is None:
            text = "no image received"
        else:
            offset_ms = (nearest.stamp_ns - anchor.stamp_ns) / 1e6
            kind = "late or stopped" if offset_ms < 0 else "no image at the anchor time"
            text = (
                f"{kind}: nearest image {offset_ms:+.0f} ms from the anchor "
                f"(tolerance {self._config.sync_tolerance_ms:.0f} ms)"
            )
        return f"{text}; last image rejected: {rejected}" if rejected else text
