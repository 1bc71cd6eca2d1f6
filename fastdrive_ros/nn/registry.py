"""Every token selector by name: which stage it runs at and how to build it (imported lazily).

Encoder-stage selectors choose from the vision encoder's output before the planner runs; LLM-stage
selectors (FastV, SparseVLM) prune inside the planner from its attention, so the planner drives
them. The table only names "module:Class", so importing it costs nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

from fastdrive_ros.nn.selection import SelectorStage

SELECTOR_NAMES: tuple[str, ...] = (
    "reconpruner",
    "fastv",
    "sparsevlm",
    "divprune",
    "vispruner",
    "prune2drive",
    "random",
    "none",
)
# Evaluation probes (nn/probes.py): accepted by `fastdrive eval --pruners`, never by the node (they
# need ground truth or replace the frame), so they are kept out of SELECTOR_NAMES.
PROBE_NAMES: tuple[str, ...] = ("oracle_fg", "anti_oracle", "shuffled", "no_images")
EVAL_SELECTOR_NAMES: tuple[str, ...] = SELECTOR_NAMES + PROBE_NAMES
# Registered (make_selector works) but not in SELECTOR_NAMES, which lists what the node and every
# evaluation can run: CDPruner needs the instruction's embeddings, which the encoder backends do
# not pass to selectors yet (nn/baselines/cdpruner.py).
NEEDS_INSTRUCTION: tuple[str, ...] = ("cdpruner",)

_TABLE: dict[str, tuple[str, SelectorStage]] = {
    "reconpruner": ("fastdrive_ros.nn.recon_pruner:ReconPruner", "encoder"),
    "fastv": ("fastdrive_ros.nn.baselines.fastv:FastV", "llm"),
    "sparsevlm": ("fastdrive_ros.nn.baselines.sparsevlm:SparseVLM", "llm"),
    "divprune": ("fastdrive_ros.nn.baselines.divprune:DivPrune", "encoder"),
    "vispruner": ("fastdrive_ros.nn.baselines.vispruner:VisPruner", "encoder"),
    "prune2drive": ("fastdrive_ros.nn.baselines.prune2drive:Prune2Drive", "encoder"),
    "cdpruner": ("fastdrive_ros.nn.baselines.cdpruner:CDPruner", "encoder"),
    "random": ("fastdrive_ros.nn.baselines.simple:RandomSelector", "encoder"),
    "none": ("fastdrive_ros.nn.baselines.simple:KeepAll", "encoder"),
    "oracle_fg": ("fastdrive_ros.nn.probes:OracleForeground", "encoder"),
    "anti_oracle": ("fastdrive_ros.nn.probes:AntiOracle", "encoder"),
    "shuffled": ("fastdrive_ros.nn.probes:ShuffledScene", "encoder"),
    "no_images": ("fastdrive_ros.nn.probes:NoImages", "encoder"),
}


def _check_name(name: str) -> None:
    if name not in _TABLE:
        known = ", ".join((*EVAL_SELECTOR_NAMES, *NEEDS_INSTRUCTION))
        raise ValueError(f"unknown selector {name!r}: choose one of {known}")


def selector_stage(name: str, *, probes: bool = False) -> Literal["encoder", "llm"]:
    """Stage of a selector: "encoder" (uses encoder output) or "llm" (prunes in the planner).

    The node and the export ask without `probes`, so a probe name fails there at start-up with
    a clear message instead of at the first frame; the evaluation passes probes=True.
    """
    _check_name(name)
    if name in PROBE_NAMES and not probes:
        raise ValueError(
            f"{name!r} is an evaluation probe (it needs ground truth or replaces the frame): "
            "use it with `fastdrive eval --pruners`; the node takes one of "
            + ", ".join(SELECTOR_NAMES)
        )
    return _TABLE[name][1]


def selector_class(name: str) -> type:
    """The class behind a selector name (imports its module)."""
    _check_name(name)
    module_name, class_name = _TABLE[name][0].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_selector(name: str, **kwargs: Any) -> Any:
    """Build a selector by name; kwargs go to its constructor.

    "reconpruner" takes `pruner=` (a ReconPruner) or `folder=` (a saved one; `expected_width=`
    checks it against the encoder's D) instead of constructor arguments.
    """
    if name == "reconpruner":
        return _make_reconpruner(**kwargs)
    return selector_class(name)(**kwargs)


def _make_reconpruner(
    *,
    pruner: Any = None,
    folder: str | Path | None = None,
    expected_width: int | None = None,
) -> Any:
    cls = selector_class("reconpruner")
    if (pruner is None) == (folder is None):
        raise ValueError("reconpruner needs exactly one of pruner= (a ReconPruner) or folder=")
    if pruner is not None:
        if not isinstance(pruner, cls):
            raise TypeError(f"pruner= must be a ReconPruner, got {type(pruner).__name__}")
        if expected_width is not None and pruner.hidden_size != expected_width:
            raise ValueError(
                f"ReconPruner was trained for encoder width {pruner.hidden_size}, this encoder "
                f"outputs {expected_width}: retrain or pick the matching pruner"
            )
        return pruner
    return cls.load(folder, expected_width=expected_width)
