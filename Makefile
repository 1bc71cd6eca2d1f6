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

.PHONY: venv demo test lint models clean-venv
.DEFAULT_GOAL := demo

$(BIN)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install -q "$(TORCH_SPEC)")
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/fastdrive demo

# Every test runs in a loopback-only network namespace (scripts/netns-run): the DDS tests start real
# Cyclone DDS peers, and no test may reach or depend on the host's network.
test: venv
	scripts/netns-run $(BIN)/python -m pytest -q $(PYTEST_ARGS) test

lint: venv
	$(BIN)/python -m ruff check fastdrive_ros test launch scripts

models: venv
	$(BIN)/fastdrive build-default --out models/default

clean-venv:
	rm -rf $(VENV)
