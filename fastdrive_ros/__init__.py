"""fastdrive_ros: a ROS 2 VLA driving node made fast by FastDriveVLA's ReconPruner."""

__version__ = "0.1.0"
