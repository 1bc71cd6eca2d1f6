"""Launch the fastdrive node: `ros2 launch fastdrive_ros drive.launch.py [arg:=value ...]`.

Every node parameter lives in the params file (default: the installed config/drive.yaml); the
arguments below override the few that users change per run. An empty argument leaves the
params file's value alone, so a custom params file is never silently overridden by a default.

  model_dir     VLA bundle or Qwen2.5-VL checkpoint folder ('' = the params file's value).
  backend       auto | tensorrt | onnxruntime | torch.
  pruner        reconpruner | fastv | sparsevlm | divprune | vispruner | random | none.
  prune_ratio   fraction of visual tokens DROPPED (the paper's p); keep ratio = 1 - prune_ratio.
  use_sim_time  true when replaying a bag with `ros2 bag play --clock`.
  namespace, node_name, log_level.
  cam_front_topic ... cam_back_right_topic, odom_topic: topic remaps.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "fastdrive_ros"
CAMERAS = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
# launch argument -> (node parameter, type) for the overridable parameters
OVERRIDES = {
    "model_dir": ("model_dir", str),
    "backend": ("backend", str),
    "pruner": ("pruner", str),
    "prune_ratio": ("prune_ratio", float),
}


def camera_argument(camera: str) -> str:
    return f"{camera.lower()}_topic"


def default_topic(camera: str) -> str:
    return f"/{camera}/image_rect_compressed"


def node_settings(values: dict) -> dict:
    """Launch-argument strings -> the Node's parameter overrides and remappings."""
    overrides = {}
    for argument, (name, kind) in OVERRIDES.items():
        text = values.get(argument, "")
        if text != "":
            overrides[name] = kind(text)
    overrides["use_sim_time"] = values.get("use_sim_time", "false").lower() in ("true", "1")
    remappings = [
        (default_topic(camera), values[camera_argument(camera)])
        for camera in CAMERAS
        if values.get(camera_argument(camera), default_topic(camera)) != default_topic(camera)
    ]
    if values.get("odom_topic", "/odom") != "/odom":
        remappings.append(("/odom", values["odom_topic"]))
    return {"overrides": overrides, "remappings": remappings}


def _launch_node(context, *args, **kwargs):
    names = list(OVERRIDES) + ["use_sim_time", "odom_topic", "params_file", "namespace"]
    names += ["node_name", "log_level"] + [camera_argument(c) for c in CAMERAS]
    values = {name: LaunchConfiguration(name).perform(context) for name in names}
    settings = node_settings(values)
    return [
        Node(
            package=PACKAGE,
            executable="fastdrive_node",
            name=values["node_name"],
            namespace=values["namespace"],
            parameters=[values["params_file"], settings["overrides"]],
            remappings=settings["remappings"],
            arguments=["--ros-args", "--log-level", values["log_level"]],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), "config", "drive.yaml"]
            ),
            description="ros2 params YAML with every node parameter (config/drive.yaml format)",
        ),
        DeclareLaunchArgument(
            "model_dir",
            default_value="",
            description="model folder; empty = the params file's model_dir (the embedded model)",
        ),
        DeclareLaunchArgument(
            "backend", default_value="", description="auto|tensorrt|onnxruntime|torch"
        ),
        DeclareLaunchArgument(
            "pruner",
            default_value="",
            description="reconpruner|fastv|sparsevlm|divprune|vispruner|random|none",
        ),
        DeclareLaunchArgument(
            "prune_ratio",
            default_value="",
            description="fraction of visual tokens DROPPED (keep ratio = 1 - prune_ratio)",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (bag replay)"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "node_name",
            default_value="fastdrive",
            description="node name ('/**' sections of the params file apply to any name)",
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level"),
        DeclareLaunchArgument("odom_topic", default_value="/odom", description="odometry topic"),
    ]
    arguments += [
        DeclareLaunchArgument(
            camera_argument(camera),
            default_value=default_topic(camera),
            description=f"{camera} image topic (CompressedImage by default)",
        )
        for camera in CAMERAS
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_launch_node)])
