"""The wire peer's bytes equal the ROS 2 CDR encoding (rosbags) for every type it sends/receives.

Serialisation only: no DDS participant starts here, so no network namespace is needed.
"""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_typestore

from fastdrive_ros.core_types import CAMERA_NAMES
from fastdrive_ros.transport import ros_types

pytest.importorskip("cyclonedds", reason="pip install 'fastdrive_ros[dds]'")

from fastdrive_ros.transport.dds.idl import WireTypes  # noqa: E402

STORE = ros_types.typestore()
T = STORE.types


def _time(sec: int, nanosec: int):
    return T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(frame: str, sec: int = 1533151603, nanosec: int = 512404000):
    return T["std_msgs/msg/Header"](stamp=_time(sec, nanosec), frame_id=frame)


def _pose(x: float, y: float, yaw: float):
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
        orientation=T["geometry_msgs/msg/Quaternion"](
            x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2))
        ),
    )


def _vec(x: float, y: float, z: float):
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def realistic() -> dict[str, object]:
    """One realistic message per type the node sends or receives (DESIGN.md section 6)."""
    rng = np.random.default_rng(3)
    jpeg = bytes([0xFF, 0xD8, 0xFF, 0xE0]) + rng.integers(0, 256, 4093, dtype=np.uint8).tobytes()
    image = rng.integers(0, 256, size=(9, 16, 3), dtype=np.uint8)
    points = [
        T["fastdrive_ros/msg/TrajectoryPoint"](
            time_from_start=T["builtin_interfaces/msg/Duration"](
                sec=i // 2, nanosec=(i % 2) * 500_000_000
            ),
            pose=_pose(2.7 * i, 0.05 * i * i, 0.01 * i),
            longitudinal_velocity_mps=5.4,
            lateral_velocity_mps=0.0,
            acceleration_mps2=-0.3,
            heading_rate_rps=0.02,
        )
        for i in range(1, 7)
    ]
    key_value = T["diagnostic_msgs/msg/KeyValue"]
    status = T["diagnostic_msgs/msg/DiagnosticStatus"]
    return {
        "sensor_msgs/msg/CompressedImage": T["sensor_msgs/msg/CompressedImage"](
            header=_header("CAM_FRONT"), format="jpeg", data=np.frombuffer(jpeg, np.uint8)
        ),
        "sensor_msgs/msg/Image": T["sensor_msgs/msg/Image"](
            header=_header("CAM_BACK"),
            height=9,
            width=16,
            encoding="rgb8",
            is_bigendian=0,
            step=48,
            data=image.reshape(-1),
        ),
        "sensor_msgs/msg/CameraInfo": T["sensor_msgs/msg/CameraInfo"](
            header=_header("CAM_FRONT_LEFT"),
            height=900,
            width=1600,
            distortion_model="plumb_bob",
            d=np.array([-0.1, 0.01, 0.0, 0.0, 0.0]),
            k=np.array([1272.6, 0, 826.6, 0, 1272.6, 479.8, 0, 0, 1]),
            r=np.eye(3).reshape(-1),
            p=np.array([1272.6, 0, 826.6, 0, 0, 1272.6, 479.8, 0, 0, 0, 1, 0]),
            binning_x=0,
            binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            ),
        ),
        "nav_msgs/msg/Odometry": T["nav_msgs/msg/Odometry"](
            header=_header("map"),
            child_frame_id="base_link",
            pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=_pose(411.3, 1180.9, 1.2), covariance=np.linspace(0.0, 3.5, 36)
            ),
            twist=T["geometry_msgs/msg/TwistWithCovariance"](
                twist=T["geometry_msgs/msg/Twist"](
                    linear=_vec(8.3, 0.0, 0.0), angular=_vec(0.0, 0.0, 0.05)
                ),
                covariance=np.zeros(36),
            ),
        ),
        "tf2_msgs/msg/TFMessage": T["tf2_msgs/msg/TFMessage"](
            transforms=[
                T["geometry_msgs/msg/TransformStamped"](
                    header=_header("base_link"),
                    child_frame_id=cam,
                    transform=T["geometry_msgs/msg/Transform"](
                        translation=_vec(1.5, 0.1 * i, 1.5),
                        rotation=T["geometry_msgs/msg/Quaternion"](x=0.5, y=-0.5, z=0.5, w=-0.5),
                    ),
                )
                for i, cam in enumerate(CAMERA_NAMES)
            ]
        ),
        "nav_msgs/msg/Path": T["nav_msgs/msg/Path"](
            header=_header("base_link"),
            poses=[
                T["geometry_msgs/msg/PoseStamped"](header=_header("base_link"), pose=p.pose)
                for p in points
            ],
        ),
        "diagnostic_msgs/msg/DiagnosticArray": T["diagnostic_msgs/msg/DiagnosticArray"](
            header=_header(""),
            status=[
                status(
                    level=1,
                    name="fastdrive: planner",
                    message="slow frame: 812 ms > 500 ms budget",
                    hardware_id="cpu",
                    values=[
                        key_value(key="prefill_ms", value="401.2"),
                        key_value(key="frames_dropped", value="3"),
                    ],
                ),
                status(level=0, name="fastdrive: sync", message="", hardware_id="", values=[]),
            ],
        ),
        "fastdrive_ros/msg/Trajectory": T["fastdrive_ros/msg/Trajectory"](
            header=_header("base_link"),
            points=points,
            status=0,
            status_detail="",
            command=2,
            model_name="fastdrive-compact",
            pruner="reconpruner",
            keep_ratio=0.25,
            kept_tokens=765,
            total_tokens=3060,
            planned_at=_time(1533151604, 12000),
        ),
        "fastdrive_ros/msg/FrameLatency": T["fastdrive_ros/msg/FrameLatency"](
            header=_header("base_link"),
            stages=[
                T["fastdrive_ros/msg/StageLatency"](stage=name, duration_ms=ms)
                for name, ms in (("decode", 21.5), ("encode", 380.25), ("prune", 2.75))
            ],
            total_ms=512.125,
            frame_age_ms=590.0,
            sync_spread_ms=41.6,
            missing_cameras=["CAM_BACK_LEFT"],
            frames_processed=1200,
            frames_dropped=17,
            frames_incomplete=2,
        ),
        "fastdrive_ros/msg/StageLatency": T["fastdrive_ros/msg/StageLatency"](
            stage="prefill", duration_ms=51.0
        ),
        "std_msgs/msg/Float64": T["std_msgs/msg/Float64"](data=512.125),
        "std_msgs/msg/Float32": T["std_msgs/msg/Float32"](data=0.25),
    }


MESSAGES = realistic()


@pytest.fixture(scope="module")
def wire() -> WireTypes:
    return WireTypes(store=STORE)


@pytest.mark.parametrize("msgtype", sorted(MESSAGES))
def test_bytes_equal_ros2_cdr_and_round_trip(wire: WireTypes, msgtype: str) -> None:
    msg = MESSAGES[msgtype]
    expected = bytes(STORE.serialize_cdr(msg, msgtype))
    wt = wire.get(msgtype)
    sample = wt.to_idl(msg)
    got = sample.serialize()
    assert got[:4] == b"\x00\x01\x00\x00"  # CDR little endian, no options: plain XCDR1
    assert got == expected
    back = wt.from_idl(type(sample).deserialize(got))
    assert type(back) is type(msg)
    assert bytes(STORE.serialize_cdr(back, msgtype)) == expected
    # What a ROS 2 node receives: cyclonedds pads the payload to 4 bytes, rosbags accepts it.
    padded = got.ljust((len(got) + 3) & ~3, b"\0")
    assert bytes(STORE.serialize_cdr(STORE.deserialize_cdr(padded, msgtype), msgtype)) == expected


@pytest.mark.parametrize("msgtype", sorted(MESSAGES))
def test_idl_types_are_ros2_named_keyless_final_xcdr1(wire: WireTypes, msgtype: str) -> None:
    cls = wire.get(msgtype).idl_class
    pkg, _, name = msgtype.split("/")
    assert cls.__idl__.idl_transformed_typename == f"{pkg}::msg::dds_::{name}_"
    cls.__idl__.populate()
    assert cls.__idl__.keyless
    assert cls.__idl__.default_version == 1  # XCDR1
    assert cls.__idl_annotations__.get("extensibility", "final") == "final"


def test_image_data_uses_the_bytes_fast_path(wire: WireTypes) -> None:
    from cyclonedds.idl._machinery import BytesMachine

    cls = wire.get("sensor_msgs/msg/Image").idl_class
    assert isinstance(cls.__idl__.v1_machine.members_machines["data"], BytesMachine)
    big = np.arange(900 * 1600 * 3, dtype=np.uint32).astype(np.uint8)
    msg = T["sensor_msgs/msg/Image"](
        header=_header("CAM_FRONT"),
        height=900,
        width=1600,
        encoding="rgb8",
        is_bigendian=0,
        step=4800,
        data=big,
    )
    sample = wire.get("sensor_msgs/msg/Image").to_idl(msg)
    assert isinstance(sample.data, bytes) and len(sample.data) == big.size
    raw = sample.serialize()
    assert raw == bytes(STORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    back = wire.get("sensor_msgs/msg/Image").from_idl(type(sample).deserialize(raw))
    assert back.data.dtype == np.uint8 and np.array_equal(back.data, big)


def test_conversion_errors_name_the_field(wire: WireTypes) -> None:
    info = MESSAGES["sensor_msgs/msg/CameraInfo"]
    bad = T["sensor_msgs/msg/CameraInfo"](**{**info.__dict__, "k": np.zeros(8)})
    with pytest.raises(ValueError, match=r"CameraInfo\.k: fixed array needs 9"):
        wire.get("sensor_msgs/msg/CameraInfo").to_idl(bad)
    image = MESSAGES["sensor_msgs/msg/Image"]
    wide = T["sensor_msgs/msg/Image"](**{**image.__dict__, "data": np.zeros(4, np.float32)})
    with pytest.raises(TypeError, match=r"Image\.data: expected a uint8 array"):
        wire.get("sensor_msgs/msg/Image").to_idl(wide)
    with pytest.raises(KeyError, match="not in the typestore"):
        wire.get("fastdrive_ros/msg/Nope")


@pytest.mark.parametrize("distro", [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY], ids=str)
def test_graph_info_parity_per_distro(distro: Stores) -> None:
    store = get_typestore(distro)
    wire = WireTypes(store=store)
    msgtype = "rmw_dds_common/msg/ParticipantEntitiesInfo"
    size = store.fielddefs["rmw_dds_common/msg/Gid"][1][0][1][1][1]
    gid = store.types["rmw_dds_common/msg/Gid"]
    msg = store.types[msgtype](
        gid=gid(data=np.arange(size, dtype=np.uint8)),
        node_entities_info_seq=[
            store.types["rmw_dds_common/msg/NodeEntitiesInfo"](
                node_namespace="/",
                node_name="fastdrive",
                reader_gid_seq=[gid(data=np.full(size, 7, np.uint8))],
                writer_gid_seq=[gid(data=np.full(size, i, np.uint8)) for i in range(3)],
            )
        ],
    )
    assert wire.get(msgtype).to_idl(msg).serialize() == bytes(store.serialize_cdr(msg, msgtype))
    assert size == (24 if distro == Stores.ROS2_HUMBLE else 16)


def _random_message(store, msgtype: str, rng):
    """Any message of the store with random values in range (sequences 0-3 long)."""

    def value(desc):
        kind, arg = desc
        if kind == Nodetype.BASE:
            return scalar(*arg)
        if kind == Nodetype.NAME:
            return _random_message(store, arg, rng)
        (inner_kind, inner), count = arg
        n = count if kind == Nodetype.ARRAY else int(rng.integers(0, min(count or 3, 3) + 1))
        if inner_kind == Nodetype.NAME:
            return [_random_message(store, inner, rng) for _ in range(n)]
        if inner[0] == "string":
            return [scalar(*inner) for _ in range(n)]
        dtype = {"byte": np.uint8, "char": np.uint8, "bool": np.bool_}.get(inner[0], inner[0])
        return np.array([scalar(inner[0], 0, unsigned_byte=True) for _ in range(n)], dtype=dtype)

    def scalar(base, bound=0, unsigned_byte=False):
        if base == "string":
            text = "ünïcode-" + "x" * int(rng.integers(0, 5))
            return text[:bound] if bound else text
        if base == "bool":
            return bool(rng.integers(0, 2))
        if base in ("float32", "float64"):
            return float(np.float32(rng.normal()))
        if base == "byte" and not unsigned_byte:
            return int(rng.integers(-128, 128))  # rosbags holds a scalar byte signed
        info = np.iinfo({"byte": np.uint8, "char": np.uint8}.get(base, base))
        return int(rng.integers(info.min, min(info.max, 2**62), dtype=np.int64))

    return store.types[msgtype](*[value(d) for _, d in store.fielddefs[msgtype][1]])


def test_every_registered_type_matches_rosbags(wire: WireTypes) -> None:
    rng = np.random.default_rng(11)
    mismatched = []
    for msgtype in sorted(STORE.fielddefs):
        msg = _random_message(STORE, msgtype, rng)
        sample = wire.get(msgtype).to_idl(msg)
        expected = bytes(STORE.serialize_cdr(msg, msgtype))
        back = wire.get(msgtype).from_idl(type(sample).deserialize(sample.serialize()))
        if sample.serialize() != expected or bytes(STORE.serialize_cdr(back, msgtype)) != expected:
            mismatched.append(msgtype)
    assert len(STORE.fielddefs) > 150
    assert mismatched == []


def _plain(value):
    """Decoded message values as plain Python (numpy arrays and bytes as lists)."""
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same_message(store, msgtype: str, ours, theirs) -> None:
    for name, desc in store.fielddefs[msgtype][1]:
        a, b = getattr(ours, name), getattr(theirs, name)
        kind, arg = desc
        if kind == Nodetype.NAME:
            _same_message(store, arg, a, b)
        elif kind != Nodetype.BASE and arg[0][0] == Nodetype.NAME:
            assert len(a) == len(b), f"{msgtype}.{name}"
            for x, y in zip(a, b):
                _same_message(store, arg[0][1], x, y)
        elif isinstance(a, str) or (isinstance(a, list) and a and isinstance(a[0], str)):
            assert a == b, f"{msgtype}.{name}"
        else:
            assert _plain(a) == pytest.approx(_plain(b), rel=1e-6), f"{msgtype}.{name}"


@pytest.mark.parametrize("msgtype", sorted(MESSAGES))
def test_an_independent_cdr_decoder_reads_our_bytes(wire: WireTypes, msgtype: str) -> None:
    # mcap-ros2-support: another implementation of ROS 2 CDR and of .msg parsing.
    dynamic = pytest.importorskip("mcap_ros2._dynamic", reason="pip install mcap-ros2-support")
    text, _ = STORE.generate_msgdef(msgtype, ros_version=2)
    decode = dynamic.generate_dynamic(msgtype, text)[msgtype]
    msg = MESSAGES[msgtype]
    _same_message(STORE, msgtype, msg, decode(wire.get(msgtype).to_idl(msg).serialize()))
