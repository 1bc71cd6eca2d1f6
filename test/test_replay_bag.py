"""`fastdrive replay`: a tiny bag through the pipeline into MCAP, read back by mcap-ros2-support
(an independent reader, so rosbags is not checking itself)."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from nusc_tiny import write_tiny_nuscenes  # noqa: E402

from fastdrive_ros.core_types import CAMERA_NAMES  # noqa: E402
from fastdrive_ros.pipeline.fakes import (  # noqa: E402
    FakeBackend,
    FakePlanner,
    shared_tiny_model,
    simple_preprocess,
)
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline  # noqa: E402
from fastdrive_ros.transport.node_params import validate_params  # noqa: E402
from fastdrive_ros.transport.replay import replay_bag  # noqa: E402

SECONDS = 4.0


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    from fastdrive_ros.data.bag import write_bag

    base = tmp_path_factory.mktemp("replay")
    root = write_tiny_nuscenes(base / "ds", seconds=SECONDS, image_size=(96, 54))
    return write_bag(root, version="v1.0-tiny", out=base / "bag", progress=False).path


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_mcap(folder: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(log_time, decoded message)] with mcap + mcap_ros2's dynamic decoder."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (path,) = folder.glob("*.mcap")
    out: dict[str, list[tuple[int, object]]] = defaultdict(list)
    with path.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, decoded in reader.iter_decoded_messages():
            out[channel.topic].append((message.log_time, decoded))
    return out


def input_stamps(bag: Path) -> list[int]:
    msgs = read_mcap(bag)["/CAM_FRONT/image_rect_compressed"]
    return [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in msgs]


def stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


@pytest.mark.slow
def test_every_frame_replay_with_the_tiny_model(bag: Path, tmp_path: Path, tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory.getbasetemp())
    params = validate_params(
        {"model_dir": str(model), "backend": "torch", "device": "cpu", "publish_overlay": True}
    )
    out = tmp_path / "out"
    summary = replay_bag(
        bag, out=out, params=params, mode="every_frame", copy_inputs=True, progress=False
    )
    frames = input_stamps(bag)
    assert summary.frames == len(frames) == summary.planned == summary.plans_ok
    assert summary.dropped == {} and summary.plan_failures == {}
    assert {"encode", "prune", "prefill", "total", "frame_age"} <= set(summary.latency_ms)
    meta = yaml.safe_load((out / "metadata.yaml").read_text())
    assert meta["rosbag2_bagfile_information"]["version"] == 8
    decoded = read_mcap(out)
    trajs = decoded["/fastdrive/trajectory"]
    assert [stamp(m) for _, m in trajs] == frames  # one per frame, stamped with camera time
    for log_time, msg in trajs:
        assert log_time >= stamp(msg)  # logged at (simulated) publish time
        assert msg.status == 0 and len(msg.points) == 6 and msg.header.frame_id == "base_link"
        assert (msg.kept_tokens, msg.total_tokens, msg.pruner) == (18, 36, "reconpruner")
        assert abs(msg.keep_ratio - 0.5) < 1e-6
    paths = decoded["/fastdrive/path"]
    assert len(paths) == len(frames) and all(len(m.poses) == 7 for _, m in paths)
    diags = decoded["/diagnostics"]
    assert len(diags) == len(frames)
    values = {kv.key: kv.value for kv in diags[-1][1].status[0].values}
    assert values["backend"] == "torch" and "encode_ms_p50" in values
    latency = decoded["/fastdrive/debug/latency"]
    assert all(m.frames_dropped == 0 and m.missing_cameras == [] for _, m in latency)
    assert len(decoded["/fastdrive/debug/total_ms"]) == len(frames)
    overlay = decoded["/fastdrive/debug/kept_tokens"][0][1]
    assert overlay.encoding == "rgb8" and len(overlay.data) == overlay.height * overlay.step
    # inputs copied next to the outputs
    for name in CAMERA_NAMES:
        assert len(decoded[f"/{name}/image_rect_compressed"]) == len(frames)
    assert len(decoded["/odom"]) > 0


def test_realtime_replay_drops_what_a_slow_model_cannot_keep_up_with(bag: Path, tmp_path: Path):
    params = validate_params({})

    def make(clock) -> FramePipeline:
        return FramePipeline(
            config=params.pipeline_config(),
            backend=FakeBackend(latency_ms=150.0),  # slept: ~1.8 camera periods per frame
            planner=FakePlanner(latency_ms=20.0),
            clock=clock,
            image_size=(56, 84),
            preprocess=simple_preprocess((56, 84)),
        )

    out = tmp_path / "out"
    summary = replay_bag(bag, out=out, params=params, make_pipeline=make, progress=False)
    frames = input_stamps(bag)
    assert summary.frames == len(frames)
    assert summary.planned + sum(summary.dropped.values()) == summary.frames
    assert set(summary.dropped) == {"superseded"}
    assert len(frames) * 0.3 < summary.planned < len(frames) * 0.6  # ~1 frame per 170 ms
    assert summary.latency_ms["frame_age"][0] >= 170.0
    trajs = read_mcap(out)["/fastdrive/trajectory"]
    assert len(trajs) == summary.planned
    assert set(stamp(m) for _, m in trajs) <= set(frames)
    gaps = Counter(round((b[0] - a[0]) / 1e6, -1) for a, b in zip(trajs, trajs[1:]))
    assert min(gaps) >= 160  # publications at most once per model time
    assert "% pruned" in summary.model  # the table says which model and backend ran
    table = summary.table()
    assert table.row_count > 10


def test_replay_refuses_bad_paths(bag: Path, tmp_path: Path) -> None:
    params = validate_params({})
    with pytest.raises(FileNotFoundError):
        replay_bag(tmp_path / "nope", out=tmp_path / "o", params=params)
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        replay_bag(bag, out=tmp_path / "exists", params=params)


def rewrite_bag(src: Path, dst: Path, change) -> Path:
    """Copy a bag message by message; `change(topic, log_ns, msg)` edits a message in place and
    returns its (possibly new) data, or None to leave the message out."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    from fastdrive_ros.transport.ros_types import typestore

    store = typestore()
    with (
        AnyReader([src], default_typestore=store) as reader,
        Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP) as writer,
    ):
        conns: dict[str, object] = {}
        for conn, log_ns, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if change(conn.topic, log_ns - reader.start_time, msg) is False:
                continue
            if conn.topic not in conns:
                conns[conn.topic] = writer.add_connection(
                    conn.topic, conn.msgtype, typestore=store
                )
            writer.write(conns[conn.topic], log_ns, store.serialize_cdr(msg, conn.msgtype))
    return dst


def fake_pipeline(params):
    def make(clock) -> FramePipeline:
        return FramePipeline(
            config=params.pipeline_config(),
            backend=FakeBackend(),
            planner=FakePlanner(),
            clock=clock,
            image_size=(56, 84),
            preprocess=simple_preprocess((56, 84)),
        )

    return make


@pytest.fixture(scope="module")
def long_bag(tmp_path_factory) -> Path:
    from fastdrive_ros.data.bag import write_bag

    base = tmp_path_factory.mktemp("replay_long")
    root = write_tiny_nuscenes(base / "ds", seconds=7.6, image_size=(96, 54))
    return write_bag(root, version="v1.0-tiny", out=base / "bag", progress=False).path


@pytest.mark.parametrize("shift_s", [-5.0, 5.0])
def test_a_bag_whose_stamps_jump_keeps_planning_every_frame(
    long_bag: Path, tmp_path: Path, shift_s: float
) -> None:
    """Issue 11: stamps jump back 5 s at 4.5 s (a recorded `ros2 bag play --loop`), or forward.

    Log times stay monotonic (they are when the recorder received the messages); header stamps of
    every message from 4.5 s on are shifted. Every frame after the jump must be planned.
    """
    shift_ns = int(shift_s * 1e9)

    def jump(topic: str, t_ns: int, msg) -> None:
        if t_ns >= 4.5e9 and hasattr(msg, "header"):
            sec, nsec = divmod(stamp(msg) + shift_ns, 10**9)
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec

    looped = rewrite_bag(long_bag, tmp_path / "looped", jump)
    params = validate_params({})
    out = tmp_path / "out"
    summary = replay_bag(
        looped,
        out=out,
        params=params,
        make_pipeline=fake_pipeline(params),
        mode="every_frame",
        progress=False,
    )
    frames = input_stamps(looped)
    at = next(i for i, (a, b) in enumerate(zip(frames, frames[1:])) if abs(b - a) > 1e9) + 1
    after = frames[at:]
    assert len(after) > 30
    decoded = read_mcap(out)
    planned = [stamp(m) for _, m in decoded["/fastdrive/trajectory"]]
    assert planned[-len(after) :] == after  # every frame after the jump, none dropped
    assert all(len(m.points) == 6 for _, m in decoded["/fastdrive/trajectory"])
    # all but at most the one anchor pending at the jump (its cameras belonged to the old timeline)
    assert summary.planned >= summary.frames - 1
    assert set(summary.dropped) <= {"time_jump"} and "out_of_order" not in summary.dropped
    direction = "back" if shift_s < 0 else "forward"
    assert summary.time_jumps == 1 and summary.counters[f"time_jump/{direction}"] == 1
    # reported in /diagnostics with the first plan after the jump (WARN), then normal again
    messages = [(m.status[0].level, m.status[0].message) for _, m in decoded["/diagnostics"]]
    jumped = [i for i, (_, text) in enumerate(messages) if f"jumped {direction}" in text]
    assert len(jumped) == 1 and messages[jumped[0]][0] == 1
    assert "ego history and health state reset" in messages[jumped[0]][1]
    assert messages[-1][0] == 0
    assert "camera time jumps (pipeline reset)" in rendered(summary)


@pytest.mark.parametrize("front", ["missing", "truncated"])
def test_replay_with_a_dead_front_camera_reports_it_on_its_own_clock(
    bag: Path, tmp_path: Path, front: str
) -> None:
    """Nothing can be planned: /diagnostics still come, every diagnostics period of bag time,
    STALE with the reason, and the summary says so."""

    def kill_front(topic: str, t_ns: int, msg):
        if topic != "/CAM_FRONT/image_rect_compressed":
            return None
        if front == "missing":
            return False
        msg.data = msg.data[: len(msg.data) // 3]
        return None

    dead = rewrite_bag(bag, tmp_path / "dead", kill_front)
    params = validate_params({"diagnostics_period_ms": 500.0})
    out = tmp_path / "out"
    summary = replay_bag(
        dead,
        out=out,
        params=params,
        make_pipeline=fake_pipeline(params),
        mode="every_frame",
        progress=False,
    )
    decoded = read_mcap(out)
    assert summary.planned == 0 and "/fastdrive/trajectory" not in decoded
    diags = decoded["/diagnostics"]
    # one per 500 ms of bag time (4 s) and a last one at the end
    assert SECONDS / 0.5 - 1 <= len(diags) <= SECONDS / 0.5 + 2
    times = [t for t, _ in diags]
    assert times == sorted(times) and times[-1] - times[0] >= (SECONDS - 1) * 1e9
    last = diags[-1][1].status[0]
    assert last.level == 3 and "nothing planned yet" in last.message  # STALE
    if front == "truncated":
        assert "CAM_FRONT" in last.message  # why: the front images cannot be decoded
    assert summary.health_worst.startswith("STALE") and summary.health_last.startswith("STALE")
    assert "last /diagnostics" in rendered(summary) and "STALE" in rendered(summary)


def rendered(summary) -> str:
    from rich.console import Console

    console = Console(width=300, record=True, file=open("/dev/null", "w"))
    console.print(summary.table())
    return console.export_text()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad_yaml", "not_a_bag"])
def test_replay_refuses_a_damaged_bag_before_loading_the_model(
    bag: Path, tmp_path: Path, damage: str
) -> None:
    """Issue 11: a traceback (exit 1) after the model load before; now one line, exit 2, and the
    model is never touched (--model points nowhere: its error would come first otherwise)."""
    import shutil

    from typer.testing import CliRunner

    from fastdrive_ros.cli import build_app

    broken = Path(shutil.copytree(bag, tmp_path / "broken"))
    (mcap,) = broken.glob("*.mcap")
    if damage == "truncated":
        mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    elif damage == "garbage":
        mcap.write_bytes(b"\x89MCAP0\r\n" + b"x" * 5000)
    elif damage == "bad_yaml":
        (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: [oops")
    else:
        (broken / "metadata.yaml").unlink()
        mcap.unlink()
    result = CliRunner().invoke(
        build_app(),
        ["replay", str(broken), "--out", str(tmp_path / "out"), "--model", str(tmp_path / "nope"),
         "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "not a readable rosbag2" in lines[0] and str(broken) in lines[0]
    assert "nope" not in result.output and not (tmp_path / "out").exists()


def test_replay_of_a_bag_without_messages_reports_zero_seconds(bag: Path, tmp_path: Path) -> None:
    empty = rewrite_bag(bag, tmp_path / "empty", lambda topic, t, msg: False)
    params = validate_params({})
    summary = replay_bag(
        empty, out=tmp_path / "out", params=params, make_pipeline=fake_pipeline(params),
        progress=False,
    )  # fmt: skip
    assert summary.frames == 0 and summary.bag_s == 0.0  # not -9223372036.9
    assert summary.health_last and not summary.health_last.startswith("OK")
