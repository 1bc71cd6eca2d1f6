# Source from bash after `make ros2`:  source scripts/ros2-env.sh
# Then `ros2 launch fastdrive_ros drive.launch.py`, `ros2 run fastdrive_ros fastdrive_node` and
# `ros2 topic echo /fastdrive/trajectory` use the ROS 2 in .venv-ros and this package's colcon
# install (install/: messages, launch, config, the embedded model).
# FASTDRIVE_ROS_VENV overrides the venv (default: .venv-ros in the repo).
_fd_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_fd_venv=${FASTDRIVE_ROS_VENV:-$_fd_root/.venv-ros}
if [ ! -x "$_fd_venv/bin/ros2" ] || [ ! -f "$_fd_root/install/local_setup.bash" ]; then
  echo "ros2-env.sh: no ROS 2 venv ($_fd_venv/bin/ros2) or colcon install" \
    "($_fd_root/install/local_setup.bash): run \`make ros2\` in $_fd_root first" >&2
  unset _fd_root _fd_venv
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV="$_fd_venv"
export PATH="$_fd_venv/bin:$PATH"
# The venv is the underlay: rclpy, messages and ros2cli packages are indexed under its share/.
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$_fd_venv:"*) ;;
  *) export AMENT_PREFIX_PATH="$_fd_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
# The overlay: prepends install/fastdrive_ros to AMENT_PREFIX_PATH and its site-packages (with
# the generated fastdrive_ros.msg) to PYTHONPATH, ahead of the editable install in .venv.
# shellcheck disable=SC1091
. "$_fd_root/install/local_setup.bash"
unset _fd_root _fd_venv
