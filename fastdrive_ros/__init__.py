"""fastdrive_ros: a ROS 2 VLA driving node made fast by FastDriveVLA's ReconPruner."""

from pkgutil import extend_path

# colcon installs the generated rclpy messages (fastdrive_ros.msg and its typesupport modules)
# into its own copy of this package; extending the package path lets a source checkout or an
# editable install that comes first on sys.path still find them there.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
