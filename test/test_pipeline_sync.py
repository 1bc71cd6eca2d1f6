from __future__ import annotations

from fastdrive_ros.pipeline.config import PipelineConfig
from fastdrive_ros.pipeline.counters import Counters
from fastdrive_ros.pipeline.sync import FrameSynchronizer
from fastdrive_ros.pipeline.types import CameraFrameIn

CAMS = ("F", "L", "R")
MS = 1_000_000


def _sync(**kw) -> tuple[FrameSynchronizer, Counters]:
    counters = Counters()
    config = PipelineConfig(camera_names=CAMS, **kw)
    return FrameSynchronizer(config=config, counters=counters), counters


def _img(name: str, stamp_ms: float, received_ms: float | None = None) -> CameraFrameIn:
    received = stamp_ms if received_ms is None else received_ms
    return CameraFrameIn(
        name, int(stamp_ms * MS), b"\xff\xd8x", "jpeg", received_ns=int(received * MS)
    )


def test_matches_closest_image_within_tolerance() -> None:
    sync, counters = _sync(sync_tolerance_ms=60)
    for frame in (_img("L", 960), _img("L", 1030), _img("R", 1050), _img("F", 1000)):
        assert sync.push(frame) == "ok"
    synced = sync.poll(1000 * MS)
    assert synced is not None and not synced.missing
    assert synced.stamp_ns == 1000 * MS
    assert synced.images["L"].stamp_ns == 1030 * MS  # 30 ms beats 40 ms
    assert synced.images["R"].stamp_ns == 1050 * MS
    assert sync.poll(1001 * MS) is None  # consumed
    assert counters.get("frames/received") == 1


def test_waits_for_a_late_camera_until_the_timeout() -> None:
    sync, _ = _sync(sync_tolerance_ms=60, camera_timeout_ms=100)
    sync.push(_img("F", 1000))
    sync.push(_img("L", 1010))
    assert sync.poll(1050 * MS) is None  # R may still come
    synced = sync.poll(1100 * MS)
    assert synced is not None
    assert synced.images["R"] is None and synced.missing["R"] == "no image received"
    # a camera whose newest image is already past the window is given up at once
    sync.push(_img("R", 1900))
    sync.push(_img("L", 2000))
    sync.push(_img("F", 2000, received_ms=2000))
    sync.push(_img("R", 2200))  # R jumped past the window: it cannot deliver a match any more
    synced = sync.poll(2001 * MS)
    assert synced is not None and "R" in synced.missing
    assert "nearest image" in synced.missing["R"]


def test_newest_complete_frame_wins_and_older_are_counted() -> None:
    sync, counters = _sync(ring_size=4)
    for k in range(3):
        t = 1000 + 83 * k
        for name in CAMS:
            sync.push(_img(name, t))
    synced = sync.poll(1200 * MS)
    assert synced is not None and synced.stamp_ns == 1166 * MS
    assert counters.get("dropped/superseded") == 2
    assert sync.pending() == 0


def test_anchor_ring_is_bounded_and_evictions_are_counted() -> None:
    sync, counters = _sync(ring_size=3)
    for k in range(10):
        sync.push(_img("F", 1000 + 83 * k))
    assert sync.pending() == 3
    assert counters.get("dropped/superseded") == 7
    assert counters.get("frames/received") == 10


def test_time_jump_back_resets_and_small_steps_back_are_out_of_order() -> None:
    sync, counters = _sync(jump_back_ms=500)
    for name in CAMS:
        sync.push(_img(name, 10_000))
    assert sync.push(_img("F", 9_900)) == "out_of_order"
    assert counters.get("dropped/out_of_order") == 1
    # the bag loops: the side cameras restart first, then the anchor
    sync.push(_img("L", 1_000))
    assert sync.push(_img("F", 1_005)) == "jump_back"
    assert counters.get("time_jump/back") == 1
    assert counters.get("dropped/time_jump") == 1  # the pending 10 s anchor
    sync.push(_img("R", 1_010))
    synced = sync.poll(1_020 * MS)
    assert synced is not None and not synced.missing
    assert synced.images["L"].stamp_ns == 1_000 * MS


def test_time_jump_forward_resets() -> None:
    sync, counters = _sync(jump_forward_ms=2000)
    sync.push(_img("F", 1_000))
    assert sync.push(_img("F", 60_000)) == "jump_forward"
    assert counters.get("time_jump/forward") == 1
    assert sync.pending() == 1


def test_rejections_are_counted_and_remembered() -> None:
    sync, counters = _sync(max_image_bytes=10)
    assert sync.push(CameraFrameIn("L", MS, b"", "jpeg")) == "rejected"
    assert sync.push(CameraFrameIn("L", MS, b"x" * 11, "jpeg")) == "rejected"
    assert sync.push(CameraFrameIn("L", MS, b"x", "yuv")) == "rejected"
    assert sync.push(CameraFrameIn("X", MS, b"x", "jpeg")) == "rejected"
    assert sync.push(CameraFrameIn("F", MS, b"", "jpeg")) == "rejected"
    assert counters.group("rejected") == {
        "empty": 2,
        "oversized": 1,
        "encoding": 1,
        "unknown_camera": 1,
    }
    assert counters.get("dropped/bad_anchor") == 1
    assert sync.last_rejects() == {"L": "encoding", "F": "empty"}


def test_waits_for_a_closer_image_when_the_match_is_over_half_a_period_old() -> None:
    sync, _ = _sync(sync_tolerance_ms=60, camera_timeout_ms=100, camera_period_ms=80)
    sync.push(_img("L", 955))  # 45 ms before the anchor: L's next image (~1035) is closer
    sync.push(_img("R", 1010))
    sync.push(_img("F", 1000))
    assert sync.poll(1010 * MS) is None
    sync.push(_img("L", 1035))
    synced = sync.poll(1036 * MS)
    assert synced is not None and synced.images["L"].stamp_ns == 1035 * MS
    # if the next image never comes, the old one (still within tolerance) is used at the timeout
    sync.push(_img("L", 1955))
    sync.push(_img("R", 2005))
    sync.push(_img("F", 2000))
    assert sync.poll(2050 * MS) is None
    synced = sync.poll(2100 * MS)
    assert synced is not None and synced.images["L"].stamp_ns == 1955 * MS
