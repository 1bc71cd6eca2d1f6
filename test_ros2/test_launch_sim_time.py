"""`ros2 launch fastdrive_ros drive.launch.py use_sim_time:=true` with the default model, fed by a
separate rclpy player (cameras, odometry, /clock; paced by the plans), checked at a separate rclpy
listener. One launch serves every test here (the model takes ~20 s to load on 2 cores).

Play script (seconds of bag time): 0-5 s clean, 5-9 s CAM_BACK_LEFT sends corrupt JPEGs, 9-13 s
CAM_BACK_RIGHT is silent; then the player (and /clock) stops and the node must report STALE. The
player slows the bag clock to at most PACE_S of bag time per plan, starting at START_RATE: a loaded
CI machine once planned every 6 s and saw nothing of the silent window at the recorded rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import NODE, Proc, python, records, ros2_cli, wait_for

PLAY_S = 13.0
CORRUPT = ("CAM_BACK_LEFT", 5.0, 9.0)
SILENT = ("CAM_BACK_RIGHT", 9.0, 13.0)
PACE_S, START_RATE, MIN_RATE = 1.0, 0.25, 0.05  # MIN_RATE: rclpy_player's floor


@dataclass
class Run:
    rows: list[dict[str, Any]]
    player_end_ns: int
    player_out: str
    launch_rc: int | None
    launch_out: str
    params: dict[str, str]

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["topic"] == name]


@pytest.fixture(scope="module")
def run(scene_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    logdir = tmp_path_factory.mktemp("sim_time")
    out = logdir / "listener.jsonl"
    launch = Proc(
        "launch",
        ["ros2", "launch", "fastdrive_ros", "drive.launch.py", "use_sim_time:=true"],
        logdir,
    )
    listener = Proc("listener", [*python("rclpy_listener.py"), str(out)], logdir)
    try:
        node_diag = lambda: any(  # noqa: E731
            r["name"].startswith("fastdrive") for r in records(out, "diagnostics")
        )
        wait_for("diagnostics from the node", node_diag, 240, launch, listener)
        # Each --no-daemon call discovers the graph afresh; the verbs' defaults (0.5 s spin, 1 s
        # wait for the node) lost the race once on a loaded CI machine ("Node not found").
        patient = ("--spin-time", "2", "--timeout", "10")
        params = {
            "describe": ros2_cli("param", "describe", NODE, "prune_ratio", *patient),
            "get": ros2_cli("param", "get", NODE, "prune_ratio", *patient),
            "set": ros2_cli("param", "set", NODE, "prune_ratio", "0.25", *patient),
        }
        player = Proc(
            "player",
            [
                *python("rclpy_player.py"),
                str(scene_bag),
                "--sim-time",
                "--seconds",
                str(PLAY_S),
                "--corrupt",
                f"{CORRUPT[0]}:{CORRUPT[1]}-{CORRUPT[2]}",
                "--silent",
                f"{SILENT[0]}:{SILENT[1]}-{SILENT[2]}",
                "--rate",
                str(START_RATE),
                "--pace",
                str(PACE_S),
            ],
            logdir,
        )
        player_rc = player.wait(timeout=PLAY_S / MIN_RATE + 60)
        player_end_ns = time.time_ns()
        assert player_rc == 0, player.output()[-3000:]
        # /clock stopped with the player: STALE within stale_after_ms (1 s) + a diagnostics period
        # once the plan in flight is done; the test below says what came if it never does.
        stale_after_end = lambda: any(  # noqa: E731
            r["level"] == 3 and r["recv_ns"] > player_end_ns + 2.5e9
            for r in records(out, "diagnostics")
        )
        deadline = time.monotonic() + 60
        while not stale_after_end() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2.0)  # a few more diagnostics: the last one must still say STALE
    finally:
        launch.interrupt()
        launch_rc = launch.wait(timeout=40)
        time.sleep(1.0)
        listener.interrupt()
        listener.wait(timeout=20)
    return Run(
        rows=records(out),
        player_end_ns=player_end_ns,
        player_out=player.output(),
        launch_rc=launch_rc,
        launch_out=launch.output(),
        params=params,
    )


def test_trajectories_and_paths_reach_a_separate_subscriber(run: Run) -> None:
    trajectories = [t for t in run.topic("trajectory") if t["status"] == 0]
    assert len(trajectories) >= 3, run.launch_out[-3000:]
    for t in trajectories:
        assert t["points"] == 6 and t["pruner"] == "reconpruner"
        assert 0 < t["kept_tokens"] < t["total_tokens"]
        # sim time: stamped with the bag's camera time (2018), not the wall clock
        assert abs(t["stamp_ns"] - time.time_ns()) > 365 * 86400 * 1e9
        assert t["planned_at_ns"] >= t["stamp_ns"]
    paths = run.topic("path")
    assert any(p["poses"] == 7 for p in paths)
    assert {p["stamp_ns"] for p in paths} & {t["stamp_ns"] for t in trajectories}


def test_latency_topics(run: Run) -> None:
    latency = run.topic("latency")
    assert latency
    for lat in latency:
        assert "plan" in lat["stages"] and "prefill" not in lat["stages"]
        assert sum(lat["stages"].values()) <= lat["total_ms"] + 1e-6
        assert lat["frames_processed"] >= 1
    assert any(r["value"] > 0 for r in run.topic("total_ms"))


def test_diagnostics_report_bad_input_over_the_wire(run: Run) -> None:
    diags = [d for d in run.topic("diagnostics") if d["name"].startswith("fastdrive")]
    corrupt = [d for d in diags if CORRUPT[0] in d["message"]]
    assert corrupt and all(d["level"] >= 1 for d in corrupt), [d["message"] for d in diags]
    silent = [d for d in diags if SILENT[0] in d["message"]]
    assert silent and all(d["level"] >= 1 for d in silent), [d["message"] for d in diags]


def test_diagnostics_turn_stale_when_clock_stops(run: Run) -> None:
    diags = [d for d in run.topic("diagnostics") if d["name"].startswith("fastdrive")]
    after = [d for d in diags if d["recv_ns"] > run.player_end_ns + 2.5e9]
    assert after, "no diagnostics after /clock stopped (timer on ROS time?)"
    assert after[-1]["level"] == 3 and "no frame planned" in after[-1]["message"]
    # every "no frame planned for N ms" is a sane duration (not bag time minus 0)
    for d in diags:
        assert float(d["values"].get("since_last_plan_ms", "0")) < 600_000, d["message"]


def test_parameters_are_described_and_read_only(run: Run) -> None:
    assert "Read only: true" in run.params["describe"]
    assert "Min value: 0.0" in run.params["describe"]
    assert "Max value: 0.99" in run.params["describe"]
    assert "0.5" in run.params["get"]
    assert "Setting parameter failed" in run.params["set"]
    assert "read-only" in run.params["set"] or "read only" in run.params["set"]


def test_python_logging_reaches_rosout(run: Run) -> None:
    ours = [r for r in run.topic("rosout") if r["name"] == "fastdrive"]
    assert any(r["msg"].startswith("fastdrive_ros.") for r in ours), ours[:5]
    # the corrupt JPEGs were logged as warnings (throttled) through the same route
    assert any(r["level"] >= 30 and CORRUPT[0] in r["msg"] for r in ours), ours[-5:]


def test_sigint_shuts_down_cleanly(run: Run) -> None:
    assert run.launch_rc == 0, run.launch_out[-3000:]
    assert "process has finished cleanly" in run.launch_out
    for bad in ("Traceback", "Destroyable", "process has died"):
        assert bad not in run.launch_out, run.launch_out[-3000:]
