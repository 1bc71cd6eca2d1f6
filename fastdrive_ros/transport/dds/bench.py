"""Benchmark: JPEG camera images over the DDS wire between two processes on loopback.

    scripts/netns-run python -m fastdrive_ros.transport.dds.bench [--seconds 10] [--cameras 6]

Publishes `cameras` CompressedImage topics at `hz` (sensor-data QoS, as a camera driver does)
from this process to a subscriber process, and prints delivered/sent, publish->receive latency
(p50/p95/max, wall clock stamped in the header) and throughput. It re-executes itself inside the
loopback-only network namespace of scripts/netns-run when started outside one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.data.bag_messages import image_topic
from fastdrive_ros.transport import ros_types

IMAGE = "sensor_msgs/msg/CompressedImage"
MODULE = "fastdrive_ros.transport.dds.bench"


def _topics(cameras: int) -> list[str]:
    return [image_topic(name) for name in CAMERA_NAMES[:cameras]]


def _jpeg(width: int, height: int, quality: int, seed: int) -> bytes:
    """A street-like test picture (gradients, blocks, noise), so the JPEG size is realistic."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) % 256)], -1).astype(float)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(20, 200)), int(rng.integers(20, 120))
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def _subscriber(args: argparse.Namespace) -> None:
    """Child process: record (receive wall time - header stamp) per message, write JSON."""
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    latencies: list[float] = []
    sizes: list[int] = []
    first = last = 0.0
    with RosDdsPeer(node_name="bench_listener") as peer:

        def on_image(msg) -> None:
            nonlocal first, last
            now = time.time_ns()
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            latencies.append((now - stamp) / 1e6)
            sizes.append(len(msg.data))
            last = time.monotonic()
            first = first or last

        for topic in _topics(args.cameras):
            peer.subscribe(topic, IMAGE, on_image, qos=args.qos)
        deadline = time.monotonic() + args.seconds + 30
        while time.monotonic() < deadline and len(latencies) < args.expect:
            if last and time.monotonic() - last > 3.0:
                break  # the publisher is done; whatever is missing was dropped
            time.sleep(0.05)
    Path(args.out).write_text(
        json.dumps({"latency_ms": latencies, "bytes": sizes, "span_s": max(last - first, 1e-9)})
    )


def _publisher(args: argparse.Namespace) -> dict:
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    store = ros_types.typestore()
    t = store.types
    jpegs = [_jpeg(args.width, args.height, args.quality, seed) for seed in range(args.cameras)]
    frames = int(args.seconds * args.hz)
    expect = frames * args.cameras
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sub.json"
        child = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--role", "sub", "--out", str(out)]
            + ["--expect", str(expect), "--cameras", str(args.cameras)]
            + ["--seconds", str(args.seconds), "--qos", args.qos]
        )
        publish_ms: list[float] = []
        try:
            with RosDdsPeer(node_name="bench_camera") as peer:
                pubs = [
                    peer.publisher(topic, IMAGE, qos=args.qos) for topic in _topics(args.cameras)
                ]
                for pub in pubs:
                    if not pub.wait_for_subscribers(1, timeout_s=30):
                        raise RuntimeError("the subscriber process did not show up within 30 s")
                time.sleep(0.5)
                start = time.perf_counter()
                for k in range(frames):
                    due = start + k / args.hz
                    time.sleep(max(0.0, due - time.perf_counter()))
                    for cam, pub in enumerate(pubs):
                        now = time.time_ns()
                        stamp = t["builtin_interfaces/msg/Time"](
                            sec=now // 10**9, nanosec=now % 10**9
                        )
                        msg = t[IMAGE](
                            header=t["std_msgs/msg/Header"](
                                stamp=stamp, frame_id=CAMERA_NAMES[cam]
                            ),
                            format="jpeg",
                            data=np.frombuffer(jpegs[cam], dtype=np.uint8),
                        )
                        t0 = time.perf_counter()
                        pub.publish(msg)
                        publish_ms.append((time.perf_counter() - t0) * 1e3)
                child.wait(timeout=args.seconds + 60)
        finally:
            if child.poll() is None:
                child.kill()
        result = json.loads(out.read_text())
    lat = np.array(result["latency_ms"])
    received = int(lat.size)
    return {
        "cameras": args.cameras,
        "hz": args.hz,
        "seconds": args.seconds,
        "qos": args.qos,
        "jpeg_kb_mean": float(np.mean([len(j) for j in jpegs]) / 1e3),
        "sent": expect,
        "received": received,
        "latency_ms_p50": float(np.percentile(lat, 50)) if received else float("nan"),
        "latency_ms_p95": float(np.percentile(lat, 95)) if received else float("nan"),
        "latency_ms_max": float(lat.max()) if received else float("nan"),
        "throughput_mb_s": float(sum(result["bytes"]) / 1e6 / result["span_s"]),
        "publish_ms_p50": float(np.percentile(publish_ms, 50)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time")
    parser.add_argument(
        "--cameras", type=int, default=6, choices=range(1, 7), help="camera topics"
    )
    parser.add_argument("--hz", type=float, default=12.0, help="frames per second per camera")
    parser.add_argument("--width", type=int, default=1600, help="image width, px")
    parser.add_argument("--height", type=int, default=900, help="image height, px")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument(
        "--qos", default="sensor_data", choices=("sensor_data", "default"), help="QoS profile"
    )
    parser.add_argument("--role", default="pub", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if os.environ.get("FASTDRIVE_NETNS") != "isolated":
        netns_run = Path(__file__).resolve().parents[3] / "scripts" / "netns-run"
        if not netns_run.is_file():
            sys.exit("run this benchmark inside a loopback-only network namespace (netns-run)")
        os.execv(str(netns_run), [str(netns_run), sys.executable, "-m", MODULE, *sys.argv[1:]])
    if args.role == "sub":
        _subscriber(args)
        return
    result = _publisher(args)
    print(
        f"{result['cameras']} x {result['hz']:g} Hz JPEG CompressedImage "
        f"({result['jpeg_kb_mean']:.0f} kB), {result['qos']} QoS, {result['seconds']:g} s, "
        "two processes on loopback:"
    )
    print(f"  delivered {result['received']}/{result['sent']}")
    print(
        f"  latency publish->callback p50 {result['latency_ms_p50']:.2f} ms, "
        f"p95 {result['latency_ms_p95']:.2f} ms, max {result['latency_ms_max']:.2f} ms"
    )
    print(
        f"  throughput {result['throughput_mb_s']:.1f} MB/s; publish() call p50 "
        f"{result['publish_ms_p50']:.2f} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
