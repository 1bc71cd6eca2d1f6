"""Errors a runtime raises at start-up: each names the file or backend and what to do about it."""

from __future__ import annotations

from pathlib import Path


class RuntimeSetupError(RuntimeError):
    """Base of the start-up errors of this room (the node reports them and does not start)."""


class ModelFileError(RuntimeSetupError):
    """A model, ONNX or engine file is missing, corrupt or does not match what was asked for.

    Attributes:
        path: the offending file or folder.
        problem: what is wrong with it.
        remedy: what the user should run or change.
    """

    def __init__(self, path: str | Path, problem: str, remedy: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{self.path}: {problem}. To fix: {remedy}")


class BackendUnavailable(RuntimeSetupError):
    """A backend cannot run here (library missing, no GPU, provider fell back to CPU...)."""

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"backend {backend!r} is unavailable: {reason}")


class ExportError(RuntimeSetupError):
    """The encoder + pruner graph cannot be exported, or the exported graph failed its checks."""


class MissingDependency(RuntimeSetupError):
    """An optional package this room imports lazily is not installed."""

    def __init__(self, module: str, how_to_install: str) -> None:
        self.module = module
        self.how_to_install = how_to_install
        super().__init__(f"python package {module!r} is not installed: {how_to_install}")


def missing_extra(module: str, extra: str) -> MissingDependency:
    """The error for a missing package that one of setup.py's extras provides."""
    return MissingDependency(module, f"pip install 'fastdrive_ros[{extra}]'")
