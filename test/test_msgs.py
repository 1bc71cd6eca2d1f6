"""msg/*.msg: one list everywhere, valid rosidl, registered with rosbags, stable type hashes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rosbags.typesys import Stores, get_typestore

from fastdrive_ros.transport import ros_types

ROOT = Path(__file__).resolve().parents[1]
MSG_DIR = ROOT / "msg"

# The types the node sends or receives (DESIGN.md section 6) plus ours.
NODE_TYPES = (
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CameraInfo",
    "nav_msgs/msg/Odometry",
    "nav_msgs/msg/Path",
    "tf2_msgs/msg/TFMessage",
    "diagnostic_msgs/msg/DiagnosticArray",
    "std_msgs/msg/Float64",
    "std_msgs/msg/Float32",
)
OURS = tuple(f"fastdrive_ros/msg/{n}" for n in ros_types.MESSAGE_NAMES)

# rosidl_adapter's rules (rosidl_adapter/parser.py).
FIELD_RE = re.compile(r"^(?!.*__)(?!.*_$)[a-z][a-z0-9_]*$")
CONSTANT_RE = re.compile(r"^[A-Z]([A-Z0-9_]?[A-Z0-9]+)*$")
MESSAGE_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def test_msg_lists_agree() -> None:
    on_disk = sorted(p.stem for p in MSG_DIR.glob("*.msg"))
    cmake = re.findall(r'"msg/(\w+)\.msg"', (ROOT / "CMakeLists.txt").read_text())
    assert on_disk == sorted(ros_types.MESSAGE_NAMES)
    assert sorted(cmake) == on_disk
    assert len(set(cmake)) == len(cmake)


def test_no_msg_subpackage_in_python_package() -> None:
    # rosidl generates fastdrive_ros/msg on a ROS machine; ours would clash with it.
    assert not (ROOT / "fastdrive_ros" / "msg").exists()


def test_msg_dir_finds_checkout_and_honours_override(tmp_path, monkeypatch) -> None:
    assert ros_types.msg_dir() == MSG_DIR
    for name in ros_types.MESSAGE_NAMES:
        shutil.copy(MSG_DIR / f"{name}.msg", tmp_path)
    monkeypatch.setenv(ros_types.MSG_DIR_ENV, str(tmp_path))
    assert ros_types.msg_dir() == tmp_path


def test_msg_dir_error_names_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(ros_types, "_candidate_msg_dirs", lambda: [tmp_path])
    with pytest.raises(FileNotFoundError, match="FASTDRIVE_MSG_DIR"):
        ros_types.msg_dir()


@pytest.mark.parametrize("name", ros_types.MESSAGE_NAMES)
def test_names_follow_rosidl_rules(name: str) -> None:
    assert MESSAGE_RE.match(name)
    consts, fields = ros_types.typestore().fielddefs[f"fastdrive_ros/msg/{name}"]
    assert fields, "a message needs at least one field"
    for field, _ in fields:
        assert FIELD_RE.match(field), field
    for const, _, _ in consts:
        assert CONSTANT_RE.match(const), const
    text = (MSG_DIR / f"{name}.msg").read_text()
    assert all(len(line) <= 99 for line in text.splitlines())
    # Units and frames are documented: every field line follows a comment.
    lines = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if not line.startswith("#") and "=" not in line:
            assert i > 0 and lines[i - 1].startswith("#"), f"undocumented field: {line}"


def test_trajectory_interface() -> None:
    store = ros_types.typestore()
    consts, fields = store.fielddefs["fastdrive_ros/msg/Trajectory"]
    names = [f for f, _ in fields]
    for needed in (
        "header",
        "points",
        "status",
        "model_name",
        "pruner",
        "keep_ratio",
        "kept_tokens",
        "total_tokens",
        "planned_at",
    ):
        assert needed in names
    status = {c: v for c, _, v in consts if c.startswith("STATUS_")}
    assert status["STATUS_OK"] == 0 and len(set(status.values())) == len(status)
    point = dict(store.fielddefs["fastdrive_ros/msg/TrajectoryPoint"][1])
    assert point["time_from_start"][1] == "builtin_interfaces/msg/Duration"
    assert point["pose"][1] == "geometry_msgs/msg/Pose"


def _trajectory(store):
    t = store.types
    points = [
        t["fastdrive_ros/msg/TrajectoryPoint"](
            time_from_start=t["builtin_interfaces/msg/Duration"](
                sec=i // 2, nanosec=(i % 2) * 500_000_000
            ),
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=2.5 * i, y=0.1 * i, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.05, w=0.9987),
            ),
            longitudinal_velocity_mps=5.0,
            lateral_velocity_mps=0.0,
            acceleration_mps2=-0.25,
            heading_rate_rps=0.02,
        )
        for i in range(1, 7)
    ]
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=1533151603, nanosec=512404000),
        frame_id="base_link",
    )
    return t["fastdrive_ros/msg/Trajectory"](
        header=header,
        points=points,
        status=0,
        status_detail="",
        command=1,
        model_name="fastdrive-compact",
        pruner="reconpruner",
        keep_ratio=0.25,
        kept_tokens=765,
        total_tokens=3060,
        planned_at=t["builtin_interfaces/msg/Time"](sec=1533151603, nanosec=912404000),
    )


def test_our_messages_round_trip_through_cdr() -> None:
    store = ros_types.typestore()
    msg = _trajectory(store)
    raw = store.serialize_cdr(msg, "fastdrive_ros/msg/Trajectory")
    back = store.deserialize_cdr(raw, "fastdrive_ros/msg/Trajectory")
    assert len(back.points) == 6 and back.pruner == "reconpruner" and back.kept_tokens == 765
    assert back.points[5].pose.position.x == pytest.approx(15.0)
    assert bytes(store.serialize_cdr(back, "fastdrive_ros/msg/Trajectory")) == bytes(raw)


def test_type_hashes() -> None:
    # Known Jazzy value (rosidl's std_msgs/msg/String type hash).
    assert ros_types.ros_type_hash("std_msgs/String") == (
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
    )
    jazzy = get_typestore(Stores.ROS2_JAZZY)
    for name in NODE_TYPES:
        assert ros_types.ros_type_hash(name) == jazzy.hash_rihs01(name), name
    hashes = {ros_types.ros_type_hash(n) for n in OURS}
    assert len(hashes) == len(OURS) and all(h.startswith("RIHS01_") for h in hashes)
    with pytest.raises(KeyError, match="unknown message type"):
        ros_types.ros_type_hash("fastdrive_ros/msg/Nope")
    with pytest.raises(ValueError, match="pkg/msg/Name"):
        ros_types.full_name("Trajectory")


def test_typestore_is_shared_and_complete() -> None:
    store = ros_types.typestore()
    assert store is ros_types.typestore()
    for name in NODE_TYPES + OURS:
        assert name in store.types
    assert ros_types.msg_class("fastdrive_ros/Trajectory") is store.types[OURS[1]]
    latency = store.types["fastdrive_ros/msg/FrameLatency"]
    assert "missing_cameras" in latency.__dataclass_fields__


def _rosidl_python() -> str | None:
    """A Python that has Debian's rosidl tooling (python3-rosidl), or None."""
    for python in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import rosidl_cli.cli, rosidl_adapter, rosidl_parser.parser"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return python
    return None


ROSIDL_CHECK = """
import sys
from pathlib import Path

from rosidl_cli.command.translate.api import translate
from rosidl_parser.definition import IdlLocator, Message
from rosidl_parser.parser import parse_idl_file

out, msg_dir, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
translate(
    package_name="fastdrive_ros",
    interface_files=[f"{msg_dir}:{name}.msg" for name in names],
    output_format="idl",
    output_path=out,
)
for name in names:
    for message in parse_idl_file(IdlLocator(out, f"{name}.idl")).content.get_elements_of_type(
        Message
    ):
        members = ",".join(m.name for m in message.structure.members)
        consts = ",".join(c.name for c in message.constants)
        print("IDL", name, members, consts)
"""


def test_msgs_valid_for_rosidl(tmp_path) -> None:
    python = _rosidl_python()
    if python is None:
        pytest.skip(
            "Debian's ROS 2 IDL tooling is not installed "
            "(apt-get install python3-rosidl python3-empy python3-catkin-pkg)"
        )
    result = subprocess.run(
        [python, "-c", ROSIDL_CHECK, str(tmp_path), str(MSG_DIR), *ros_types.MESSAGE_NAMES],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    store = ros_types.typestore()
    seen = {}
    for line in result.stdout.splitlines():
        if not line.startswith("IDL "):
            continue  # translate's own "Reading/Writing" lines
        name, members, consts = (line.split(" ") + ["", ""])[1:4]
        seen[name] = (members.split(",") if members else [], consts.split(",") if consts else [])
    assert sorted(seen) == sorted(ros_types.MESSAGE_NAMES)
    for name, (members, consts) in seen.items():
        have_consts, have_fields = store.fielddefs[f"fastdrive_ros/msg/{name}"]
        assert members == [f for f, _ in have_fields], name
        assert consts == [c for c, _, _ in have_consts], name
