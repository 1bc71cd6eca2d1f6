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
