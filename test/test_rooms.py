"""The room boundaries of DESIGN.md section 3, checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastdrive_ros"

# room -> rooms it must never import (first-party)
FORBIDDEN_ROOMS = {
    "nn": {"data", "train", "eval", "runtime", "pipeline", "transport"},
    "data": {"nn", "train", "eval", "runtime", "pipeline", "transport"},
    "train": {"runtime", "pipeline", "transport"},
    "eval": {"runtime", "pipeline", "transport"},
    "runtime": {"data", "train", "eval", "pipeline", "transport"},
    "pipeline": {"data", "train", "eval", "transport"},
    "transport": {"train", "eval"},
}
# third-party module -> the only room allowed to import it
OWNED_THIRD_PARTY = {
    "rclpy": "transport",
    "launch": "transport",
    "launch_ros": "transport",
    "cyclonedds": "transport",
    "tensorrt": "runtime",
    "onnxruntime": "runtime",
}
# optional heavy dependencies: never imported at module level (lazy, with a clear error)
LAZY = {
    "rclpy",
    "launch",
    "launch_ros",
    "cyclonedds",
    "tensorrt",
    "onnxruntime",
    "nuscenes",
    "onnx",
    "onnxscript",
    "pycuda",
    "cuda",
    "mcap",
    "mcap_ros2",
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _room(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module name, imported at module level) for every import in the file."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, top))
            visit(child, nested)

    visit(tree, True)
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_rooms(path: Path) -> None:
    room = _room(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for name, top_level in _imports(tree):
        root = name.split(".")[0]
        if root == "fastdrive_ros" and room in FORBIDDEN_ROOMS:
            target = name.split(".")[1] if "." in name else ""
            assert target not in FORBIDDEN_ROOMS[room], f"{path.name}: room {room} imports {name}"
        owner = OWNED_THIRD_PARTY.get(root)
        assert owner is None or room == owner, f"{path.name}: only {owner}/ may import {root}"
        assert not (top_level and root in LAZY), (
            f"{path.name}: import {root} lazily, inside a function"
        )
