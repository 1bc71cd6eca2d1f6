"""In-process bag replay: a rosbag2 drives the pipeline directly, outputs go to an MCAP bag.

No network. Messages are fed in recorded order, each arriving at its bag log time:
  realtime     the clock follows the bag and runs on while the model works, so frames that
               arrive meanwhile are dropped as in the car (latency realism; the default).
  every_frame  every synchronised frame is planned (evaluation); frame ages are then only the
               simulated model cost, not what a car would see.
The output bag (rosbag2 metadata version 8, MCAP) holds ~/trajectory, ~/path, /diagnostics and
the ~/debug latency topics exactly as the node publishes them, stamped with the camera time of
their frame and logged at their (simulated) publish time; with `copy_inputs` the input messages
are copied next to them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastdrive_ros.pipeline.clock import Clock, ManualClock, ReplayClock
from fastdrive_ros.pipeline.frame_pipeline import FramePipeline
from fastdrive_ros.pipeline.latency import STAGES
from fastdrive_ros.pipeline.simulate import ClockMode, Event, drive
from fastdrive_ros.pipeline.types import HealthReport, PipelineOutput
from fastdrive_ros.transport import node_core
from fastdrive_ros.transport.node_core import NodeCore
from fastdrive_ros.transport.node_messages import RosbagsFactory
from fastdrive_ros.transport.node_params import NodeParams

LOG = logging.getLogger("fastdrive_ros.replay")


class BagError(ValueError):
    """The input is not a readable rosbag2 (garbage or truncated file, bad metadata.yaml)."""


def check_bag(bag: Path, store: Any) -> None:
    """Open the bag once and close it: a damaged one fails here, before the model is loaded.

    rosbags reads the metadata and each MCAP file's summary on open, so a truncated (no end
    magic), garbage or foreign file and a bad metadata.yaml all surface as one error here.
    """
    from rosbags.highlevel import AnyReader

    if not bag.exists():
        raise FileNotFoundError(f"bag {bag} does not exist")
    try:
        with AnyReader([bag], default_typestore=store):
            pass
    except Exception as exc:  # rosbags raises AnyReaderError, ReaderError, YAML and OS errors
        raise BagError(_unreadable(bag, exc)) from exc


def _unreadable(bag: Path, exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return (
        f"{bag} is not a readable rosbag2 ({type(exc).__name__}: {text}); pass a bag folder "
        "(metadata.yaml with .mcap or .db3 files), e.g. one written by `fastdrive bag`, and "
        "check that it was copied completely"
    )


@dataclass
class ReplaySummary:
    """What a replay did (the demo and benchmarks read it).

    Attributes:
        frames: anchor (front camera) images read from the bag.
        planned: frames planned (a trajectory was published for each).
        plans_ok / plan_failures: usable plans, and failures by reason.
        dropped: frames dropped, by reason.
        latency_ms: stage -> (p50, p95) over the whole run.
        topics: output topic -> messages written.
        bag_s / wall_s: bag time covered and wall time spent.
        counters: the pipeline's final counters.
        model: what ran: model folder, pruner and ratio, encoder+pruner backend and why.
        time_jumps: anchor camera time jumps (bag loops) that reset the pipeline.
        health_worst / health_last: the worst and the last /diagnostics written ("LEVEL: why").
    """

    bag: Path
    out: Path
    mode: ClockMode
    frames: int = 0
    planned: int = 0
    plans_ok: int = 0
    plan_failures: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    incomplete: int = 0
    latency_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)
    bag_s: float = 0.0
    wall_s: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    model: str = ""
    time_jumps: int = 0
    health_worst: str = ""
    health_last: str = ""
    _worst_level: int = field(default=-1, repr=False)

    def note_health(self, report: HealthReport) -> None:
        """Remember the worst and the last /diagnostics level written."""
        text = f"{report.level.name}: {report.message}"
        if not self.health_worst or report.level >= self._worst_level:
            self._worst_level = report.level
            self.health_worst = text
        self.health_last = text

    def table(self) -> Any:
        """A rich Table of the summary (frames, drops, trajectories, per-stage p50/p95)."""
        from rich.table import Table

        title = f"fastdrive replay {self.bag.name} ({self.mode})"
        table = Table(title=title, caption=self.model or None, show_lines=False)
        table.add_column("what")
        table.add_column("value", justify="right")
        table.add_column("p95 ms", justify="right")
        table.add_row("frames in the bag", str(self.frames), "")
        table.add_row("frames planned (trajectories published)", str(self.planned), "")
        table.add_row("  usable plans", str(self.plans_ok), "")
        for reason, count in sorted(self.plan_failures.items()):
            table.add_row(f"  failed: {reason}", str(count), "")
        for reason, count in sorted(self.dropped.items()):
            table.add_row(f"dropped: {reason}", str(count), "")
        table.add_row("frames with a substituted camera", str(self.incomplete), "")
        if self.time_jumps:
            table.add_row("camera time jumps (pipeline reset)", str(self.time_jumps), "")
        if self.health_worst:  # the level and the first reason; the output bag has the rest
            table.add_row("worst /diagnostics", _first_reason(self.health_worst), "")
            table.add_row("last /diagnostics", _first_reason(self.health_last), "")
        for stage, (p50, p95) in self.latency_ms.items():
            table.add_row(f"latency {stage} p50 ms", f"{p50:.1f}", f"{p95:.1f}")
        table.add_row("bag seconds / wall seconds", f"{self.bag_s:.1f} / {self.wall_s:.1f}", "")
        return table


def _first_reason(text: str, width: int = 60) -> str:
    """'LEVEL: reason; reason...' -> 'LEVEL: reason (+N more)', cut to `width` characters."""
    level, _, reasons = text.partition(": ")
    parts = [r for r in reasons.split("; ") if r]
    first = parts[0] if parts else reasons
    if len(first) > width:
        first = first[: width - 3] + "..."
    more = f" (+{len(parts) - 1} more)" if len(parts) > 1 else ""
    return f"{level}: {first}{more}"


def _bag_seconds(reader: Any) -> float:
    """Bag time covered; 0 for a bag without messages (rosbags reports int64 extremes then)."""
    if not sum(c.msgcount for c in reader.connections):
        return 0.0
    return max(0.0, reader.duration / 1e9)


def _describe(info: Any) -> str:
    """One line of what a pipeline runs, e.g. 'default, reconpruner 50 %, torch (why)'."""
    why = info.extra.get("backend_reason")
    backend = f"{info.backend} ({why})" if why else info.backend
    return f"{info.model_name}, {info.pruner} {100 * info.prune_ratio:.0f} % pruned, {backend}"


def _events(
    reader: Any,
    connections: dict[str, tuple[str, Any]],
    copy: Callable[[Any, int, bytes], None] | None,
) -> Iterator[tuple[int, Event]]:
    """(log time, pipeline event) for the node's input topics, in bag order.

    With `copy`, every message of the bag (inputs or not) is handed to it as it is read.
    """
    conns = [c for c in reader.connections if copy is not None or c.topic in connections]
    messages = reader.messages(connections=conns)
    last_ns = None
    while True:
        try:
            conn, log_ns, raw = next(messages)
        except StopIteration:
            return
        except Exception as exc:  # a damaged chunk past the summary that open() checked
            where = f"after log time {last_ns}" if last_ns is not None else "at its start"
            raise BagError(_unreadable(Path(reader.paths[0]), exc) + f" (failed {where})") from exc
        last_ns = log_ns
        if copy is not None:
            copy(conn, log_ns, raw)
        if conn.topic not in connections:
            continue
        kind, channel = connections[conn.topic]
        try:
            msg = reader.deserialize(raw, conn.msgtype)
            if kind == "camera":
                convert = (
                    node_core.camera_from_image
                    if conn.msgtype == node_core.RAW_IMAGE
                    else node_core.camera_from_compressed
                )
                yield log_ns, convert(channel, msg, log_ns)
            else:
                yield log_ns, node_core.odometry_from_msg(msg)
        except Exception as exc:  # one bad message must not end the replay
            LOG.warning("%s at %d: cannot be used: %s", conn.topic, log_ns, exc)


def replay_bag(
    bag: str | Path,
    *,
    out: str | Path,
    params: NodeParams,
    make_pipeline: Callable[[Clock], FramePipeline] | None = None,
    mode: ClockMode = "realtime",
    copy_inputs: bool = False,
    progress: bool = True,
    node_name: str = "fastdrive",
) -> ReplaySummary:
    """Replay `bag` through the pipeline into `out`.

    The pipeline is built from `params` (model folder, backend...) unless `make_pipeline(clock)`
    builds it (tests, benchmarks with a preloaded model); it must use the clock it is given.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    from fastdrive_ros.pipeline.factory import build_pipeline
    from fastdrive_ros.transport.dds.names import resolve_topic
    from fastdrive_ros.transport.ros_types import typestore

    if mode not in ("realtime", "every_frame"):
        raise ValueError(f"mode must be realtime or every_frame, got {mode!r}")
    bag, out = Path(bag), Path(out)
    store = typestore()
    check_bag(bag, store)
    if out.exists():
        raise FileExistsError(f"{out} exists: choose another --out or delete it")
    clock = ReplayClock() if mode == "realtime" else ManualClock()
    if make_pipeline is None:
        pipeline = build_pipeline(params.pipeline_params(), clock=clock)
    else:
        pipeline = make_pipeline(clock)
    core = NodeCore(
        params=params, pipeline=pipeline, factory=RosbagsFactory(), node_name=node_name
    )
    summary = ReplaySummary(bag=bag, out=out, mode=mode, model=_describe(pipeline.info))
    samples: dict[str, list[float]] = {}
    inputs = {topic: ("camera", name) for name, topic in params.camera_topic_map().items()}
    inputs[params.odom_topic] = ("odom", "")
    start = time.perf_counter()
    with (
        AnyReader([bag], default_typestore=store) as reader,
        Writer(out, version=8, storage_plugin=StoragePlugin.MCAP) as writer,
    ):
        missing = sorted(set(inputs) - {c.topic for c in reader.connections})
        if missing:
            LOG.warning("topics not in %s: %s", bag, ", ".join(missing))
        conns = {
            p.key: writer.add_connection(
                resolve_topic(p.topic, node_name=node_name), p.msgtype, typestore=store
            )
            for p in core.publications()
        }
        copies: dict[str, Any] = {}

        def copy(conn: Any, log_ns: int, raw: bytes) -> None:
            if conn.topic not in copies:
                copies[conn.topic] = writer.add_connection(
                    conn.topic, conn.msgtype, typestore=store
                )
            writer.write(copies[conn.topic], log_ns, raw)

        total = sum(c.msgcount for c in reader.connections if c.topic in inputs)
        bar = tqdm(total=total, unit="msg", disable=not progress, desc=f"replay {bag.name}")

        diag_period_ns = int(params.diagnostics_period_ms * 1e6)
        last_diag_ns: list[int | None] = [None]

        def write_diagnostics(report: HealthReport, now: int) -> None:
            key, msg = core.diagnostics(report, now)
            writer.write(conns[key], now, store.serialize_cdr(msg, msg.__msgtype__))
            topic = conns[key].topic
            summary.topics[topic] = summary.topics.get(topic, 0) + 1
            last_diag_ns[0] = now
            summary.note_health(report)

        def idle_diagnostics(now: int, *, force: bool = False) -> None:
            """/diagnostics on the replay's own clock, as the live node's timer publishes them.

            Only when nothing was planned for a period: a dead front camera must not leave a
            silent output bag.
            """
            if last_diag_ns[0] is None:
                last_diag_ns[0] = now  # the first period starts with the first message
                if not force:
                    return
            if force or now - last_diag_ns[0] >= diag_period_ns:
                write_diagnostics(pipeline.health(now), now)

        def on_event(log_ns: int, event: Event) -> None:
            bar.update()
            idle_diagnostics(pipeline.clock.now_ns())

        def on_output(output: PipelineOutput) -> None:
            now = pipeline.clock.now_ns()
            last_diag_ns[0] = now  # a planned frame carries its own diagnostics
            summary.note_health(output.health)
            for key, msg in core.outputs(output, now):
                data = store.serialize_cdr(msg, msg.__msgtype__)
                writer.write(conns[key], now, data)
                topic = conns[key].topic
                summary.topics[topic] = summary.topics.get(topic, 0) + 1
            for stage, value in output.latency_ms.items():
                if np.isfinite(value):
                    samples.setdefault(stage, []).append(value)

        try:
            drive(
                pipeline,
                clock,
                _events(reader, inputs, copy if copy_inputs else None),
                mode=mode,
                on_output=on_output,
                on_event=on_event,
            )
        finally:
            bar.close()
        if pipeline.counters.get("processed") == 0:
            # nothing was planned: one last report at the end, however short the bag was
            idle_diagnostics(pipeline.clock.now_ns(), force=True)
        summary.bag_s = _bag_seconds(reader)
    summary.wall_s = time.perf_counter() - start
    counters = pipeline.counters
    summary.counters = counters.snapshot()
    summary.frames = counters.get("frames/received")
    summary.planned = counters.get("processed")
    summary.plans_ok = counters.get("planned")
    summary.plan_failures = counters.group("failed")
    summary.dropped = counters.group("dropped")
    summary.incomplete = counters.get("frames/incomplete")
    summary.time_jumps = counters.get("time_jump/back") + counters.get("time_jump/forward")
    order = [s for s in STAGES if s in samples]
    summary.latency_ms = {
        s: tuple(float(v) for v in np.percentile(samples[s], [50, 95])) for s in order
    }
    return summary
