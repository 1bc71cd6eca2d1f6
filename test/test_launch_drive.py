"""launch/drive.launch.py: compiles, declares the documented arguments, and builds the Node it
should. ROS 2 launch cannot be installed here, so the file is also run against small stand-ins
of the launch APIs it uses; where launch_ros is importable the real LaunchDescription is built.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "drive.launch.py"
ARGUMENTS = {
    "params_file",
    "model_dir",
    "backend",
    "pruner",
    "prune_ratio",
    "use_sim_time",
    "namespace",
    "node_name",
    "log_level",
    "odom_topic",
    "cam_front_topic",
    "cam_front_right_topic",
    "cam_front_left_topic",
    "cam_back_topic",
    "cam_back_left_topic",
    "cam_back_right_topic",
}


def test_compiles_and_targets_the_installed_executable() -> None:
    source = LAUNCH.read_text(encoding="utf-8")
    tree = ast.parse(source)
    compile(tree, str(LAUNCH), "exec")
    assert "generate_launch_description" in {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef)
    }
    assert 'executable="fastdrive_node"' in source and 'PACKAGE = "fastdrive_ros"' in source
    script = ROOT / "scripts" / "fastdrive_node"
    assert script.is_file() and os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/usr/bin/env python3")
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "install(PROGRAMS scripts/fastdrive_node" in cmake
    assert "install(DIRECTORY launch config" in cmake


class _Recorder:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorder):
    def perform(self, context: dict) -> str:
        return context[self.args[0]]


@pytest.fixture
def stub_launch(monkeypatch):
    """Minimal stand-ins for launch / launch_ros, recording what the file builds."""
    modules = {
        "launch": {"LaunchDescription": _Recorder},
        "launch.actions": {"DeclareLaunchArgument": _Recorder, "OpaqueFunction": _Recorder},
        "launch.substitutions": {
            "LaunchConfiguration": _LaunchConfiguration,
            "PathJoinSubstitution": _Recorder,
        },
        "launch_ros": {},
        "launch_ros.actions": {"Node": _Recorder},
        "launch_ros.substitutions": {"FindPackageShare": _Recorder},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("drive_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arguments_and_node(stub_launch) -> None:
    description = stub_launch.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs for e in entities[:-1]}
    assert set(declared) == ARGUMENTS
    assert all(kw.get("description") for kw in declared.values())
    assert "DROPPED" in declared["prune_ratio"]["description"]
    opaque = entities[-1]
    context = {name: kw["default_value"] for name, kw in declared.items()}
    context["params_file"] = "/opt/share/fastdrive_ros/config/drive.yaml"
    (node,) = opaque.kwargs["function"](context)
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"]) == (
        "fastdrive_ros",
        "fastdrive_node",
        "fastdrive",
    )
    # empty arguments leave the params file alone; only use_sim_time is always set
    assert kw["parameters"] == [
        "/opt/share/fastdrive_ros/config/drive.yaml",
        {"use_sim_time": False},
    ]
    assert kw["remappings"] == []
    context.update(
        {
            "prune_ratio": "0.75",
            "pruner": "fastv",
            "use_sim_time": "true",
            "model_dir": "/models/x",
            "cam_back_topic": "/car/rear/compressed",
            "odom_topic": "/vehicle/odom",
        }
    )
    (node,) = opaque.kwargs["function"](context)
    assert node.kwargs["parameters"][1] == {
        "model_dir": "/models/x",
        "pruner": "fastv",
        "prune_ratio": 0.75,
        "use_sim_time": True,
    }
    assert node.kwargs["remappings"] == [
        ("/CAM_BACK/image_rect_compressed", "/car/rear/compressed"),
        ("/odom", "/vehicle/odom"),
    ]


def test_launch_defaults_match_the_node_parameters(stub_launch) -> None:
    from fastdrive_ros.transport.node_params import PARAMS_BY_NAME

    topics = PARAMS_BY_NAME["camera_topics"].default
    cameras = PARAMS_BY_NAME["camera_names"].default
    assert [stub_launch.default_topic(c) for c in stub_launch.CAMERAS] == topics
    assert list(stub_launch.CAMERAS) == cameras
    assert PARAMS_BY_NAME["odom_topic"].default == "/odom"
    for argument, (name, _) in stub_launch.OVERRIDES.items():
        assert name in PARAMS_BY_NAME, argument


def test_real_launch_description_where_ros_is_installed() -> None:
    pytest.importorskip("launch_ros", reason="ROS 2 launch_ros is not installed here")
    spec = importlib.util.spec_from_file_location("drive_launch_real", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert names == ARGUMENTS
