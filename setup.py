"""pip path for machines without ROS 2; `colcon build` uses CMakeLists.txt + package.xml."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _tree(src: str, dest: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under `src` (if present) below `dest`."""
    root = HERE / src
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())] if root.is_dir() else []
    entries = []
    for folder in folders:
        files = sorted(str(f.relative_to(HERE)) for f in folder.iterdir() if f.is_file())
        if files:
            rel = folder.relative_to(root).as_posix()
            entries.append((dest if rel == "." else f"{dest}/{rel}", files))
    return entries


# onnxruntime and onnxruntime-gpu overwrite each other silently: install exactly one of the two
# extras `ort` / `ort-gpu`.  TensorRT comes from JetPack or NVIDIA's own packages, never from here.
# The ONNX Runtime backend reads the graph's metadata with `onnx` (runtime/onnx_meta.py).
EXTRAS = {
    "nuscenes": ["nuscenes-devkit==1.2.0"],
    "dds": ["cyclonedds==11.0.1"],
    "ort": ["onnxruntime>=1.18", "onnx>=1.16"],
    "ort-gpu": ["onnxruntime-gpu>=1.18", "onnx>=1.16"],
    "export": ["onnx>=1.16", "onnxscript>=0.1"],
    "dev": [
        "pytest>=8",
        "mcap>=1.1",
        "mcap-ros2-support>=0.5",
        "ruff>=0.6",
        # train/dense_probe.py reads decisions with boosted trees (also pulled in by nuscenes)
        "scikit-learn>=1.3",
    ],
}

setup(
    name="fastdrive_ros",
    version="0.1.0",
    description=(
        "ROS 2 perception-planning node for end-to-end driving with a VLA planner made fast by "
        "FastDriveVLA's ReconPruner"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["fastdrive_ros", "fastdrive_ros.*"]),
    include_package_data=True,
    package_data={"fastdrive_ros": ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/fastdrive_ros"]),
        ("share/fastdrive_ros", ["package.xml"]),
        # What `ros2 launch` / `ros2 run` look up through the ament index (AMENT_PREFIX_PATH =
        # the install prefix). rclpy still needs the messages from a colcon build (README).
        ("share/fastdrive_ros/launch", ["launch/drive.launch.py"]),
        ("share/fastdrive_ros/config", ["config/drive.yaml"]),
        ("lib/fastdrive_ros", ["scripts/fastdrive_node"]),
        # msg/*.msg: transport/ros_types.py registers them with rosbags from share/ when installed.
        ("share/fastdrive_ros/msg", sorted(f"msg/{p.name}" for p in (HERE / "msg").glob("*.msg"))),
        # the embedded default model: pipeline/factory.py finds it in share/ when installed
        *_tree("models/default", "share/fastdrive_ros/models/default"),
    ],
    install_requires=[
        # numpy 1.26 is what ROS 2 Humble/Jazzy and nuscenes-devkit 1.2 run with.
        "numpy>=1.26,<2",
        # Any torch >= 2.4 is kept as installed (GPU machines bring their own); `make` pins the
        # CPU wheel so a CPU machine never downloads CUDA packages.
        "torch>=2.4",
        "transformers>=4.49",
        "tokenizers>=0.19",
        "safetensors>=0.4",
        "rosbags>=0.11,<0.12",
        "opencv-python-headless>=4.8",
        "shapely>=2.0,<2.1",
        "pyyaml>=6",
        "typer>=0.12",
        "rich>=13",
        # inter-process lock around the TensorRT timing cache and engine builds (runtime/)
        "filelock>=3.12",
        "tqdm>=4.66",
        "matplotlib>=3.8",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["fastdrive = fastdrive_ros.cli:main"]},
)
