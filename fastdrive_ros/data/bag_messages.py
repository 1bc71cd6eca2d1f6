"""ROS 2 Humble messages for nuScenes data, as rosbags dataclasses (the project's in-memory form).

Frames: `map` (nuScenes global), `base_link` (nuScenes ego), and one optical frame per camera named
after its channel (CAM_FRONT ...: x right, y down, z forward, as nuScenes calibrations are).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from fastdrive_ros.data.cameras import CameraCalibration
from fastdrive_ros.data.frames import Pose, ros_quaternion

MAP_FRAME = "map"
BASE_FRAME = "base_link"
IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"
ODOM_TYPE = "nav_msgs/msg/Odometry"


@lru_cache(maxsize=1)
def humble_typestore() -> Any:
    """The rosbags typestore with the standard ROS 2 Humble message types."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def image_topic(channel: str) -> str:
    """/CAM_FRONT/image_rect_compressed, ..."""
    return f"/{channel}/image_rect_compressed"


def camera_info_topic(channel: str) -> str:
    """/CAM_FRONT/camera_info, ..."""
    return f"/{channel}/camera_info"


def _types() -> Any:
    return humble_typestore().types


def header(t_us: int, frame_id: str) -> Any:
    """std_msgs/Header stamped with a dataset time in microseconds."""
    types = _types()
    sec, usec = divmod(int(t_us), 1_000_000)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=usec * 1000)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def compressed_image(t_us: int, channel: str, jpeg: bytes) -> Any:
    """CompressedImage with the JPEG bytes as they are (no re-encode)."""
    return _types()[IMAGE_TYPE](
        header=header(t_us, channel),
        format="jpeg",
        data=np.frombuffer(jpeg, dtype=np.uint8),
    )


def camera_info(t_us: int, calibration: CameraCalibration) -> Any:
    """CameraInfo of a rectified nuScenes image: K, P = [K | 0], R = I, plumb_bob zeros."""
    types = _types()
    k = np.asarray(calibration.intrinsic, dtype=np.float64)
    p = np.zeros((3, 4))
    p[:, :3] = k
    roi = types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return types[CAMERA_INFO_TYPE](
        header=header(t_us, calibration.channel),
        height=int(calibration.height),
        width=int(calibration.width),
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(9).copy(),
        r=np.eye(3).reshape(9),
        p=p.reshape(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def transform(t_us: int, parent: str, child: str, pose: Pose) -> Any:
    """TransformStamped parent -> child (the child's pose in the parent frame)."""
    types = _types()
    x, y, z, w = ros_quaternion(pose.rotation)
    tx, ty, tz = (float(v) for v in pose.translation)
    return types["geometry_msgs/msg/TransformStamped"](
        header=header(t_us, parent),
        child_frame_id=child,
        transform=types["geometry_msgs/msg/Transform"](
            translation=types["geometry_msgs/msg/Vector3"](x=tx, y=ty, z=tz),
            rotation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
        ),
    )


def tf_message(transforms: list[Any]) -> Any:
    """tf2_msgs/TFMessage holding the transforms."""
    return _types()[TF_TYPE](transforms=transforms)


def camera_mounts(t_us: int, calibrations: list[CameraCalibration]) -> Any:
    """/tf_static content: base_link -> each camera's optical frame."""
    return tf_message(
        [
            transform(t_us, BASE_FRAME, c.channel, Pose(c.translation, c.rotation))
            for c in calibrations
        ]
    )


def odometry(t_us: int, pose: Pose, linear: np.ndarray, angular: np.ndarray) -> Any:
    """Odometry map -> base_link: pose in map, twist (ego-frame velocities) in base_link."""
    types = _types()
    x, y, z, w = ros_quaternion(pose.rotation)
    px, py, pz = (float(v) for v in pose.translation)
    vec = types["geometry_msgs/msg/Vector3"]
    return types[ODOM_TYPE](
        header=header(t_us, MAP_FRAME),
        child_frame_id=BASE_FRAME,
        pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](
                position=types["geometry_msgs/msg/Point"](x=px, y=py, z=pz),
                orientation=types["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
            ),
            covariance=np.zeros(36),
        ),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](
            twist=types["geometry_msgs/msg/Twist"](
                linear=vec(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
                angular=vec(x=float(angular[0]), y=float(angular[1]), z=float(angular[2])),
            ),
            covariance=np.zeros(36),
        ),
    )


def qos(*, transient_local: bool) -> Any:
    """Offered QoS for the bag: reliable, keep last; transient local for /tf_static."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(sec=0, nsec=0)  # "unspecified": the player uses the RMW default
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=1 if transient_local else 10,
        reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )
