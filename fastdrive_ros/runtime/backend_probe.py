"""backend: auto on a CPU: time ONNX Runtime against torch once per machine and model, keep it.

Two demo runs on one machine chose torch once and ONNX Runtime "8.50x faster" the next: two
timed runs each, one backend after the other, on a machine whose load changed in between. Here:
  * the two backends run in alternation (A, B, A, B, ...), so a load change hits both alike;
  * each gets `runs` timed runs after a warm-up, and the medians are compared;
  * the decision and its figures are cached under a key of the machine (CPU model, cores,
    threads), the software (torch, onnxruntime) and the model (weights hash, ONNX content hash,
    input shape): the next start on the same machine and model makes the same choice, without
    probing, and says where the figures came from. Delete the cache file to measure again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
CACHE_FILE = "backend_choice.json"


@dataclass(frozen=True)
class ProbeResult:
    """Median ms per frame of each backend, how many runs, and where the figures come from."""

    ort_ms: float
    torch_ms: float
    runs: int
    measured_at: str
    cached: bool = False

    @property
    def winner(self) -> str:
        return "onnxruntime-cpu" if self.ort_ms <= self.torch_ms else "torch"

    def describe(self) -> str:
        fast, slow = sorted((self.ort_ms, self.torch_ms))
        where = f"cached from {self.measured_at}" if self.cached else "measured now"
        return (
            f"ONNX Runtime {self.ort_ms:.1f} ms vs torch {self.torch_ms:.1f} ms "
            f"(median of {self.runs} alternating runs each, {slow / fast:.2f}x; {where})"
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def decision_key(
    *, model_hash: str, onnx_hash: str, input_shape: tuple[int, ...], ort_threads: int | None
) -> str:
    """What the choice depends on: this machine, these libraries, this model and graph."""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:  # pragma: no cover - ONNX Runtime is what is being probed
        ort_version = "none"
    parts = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ort_threads": ort_threads,
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "model": model_hash,
        "onnx": onnx_hash,
        "input": list(input_shape),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class DecisionCache:
    """A small JSON file: key -> ProbeResult. Unreadable files are treated as empty."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> ProbeResult | None:
        entry = self._load().get(key)
        try:
            return ProbeResult(**{**entry, "cached": True}) if entry else None
        except TypeError:  # written by another version
            return None

    def put(self, key: str, result: ProbeResult) -> None:
        data = self._load()
        data[key] = {k: v for k, v in asdict(result).items() if k != "cached"}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:  # a read-only home must not stop the node
            log.warning("cannot cache the backend decision in %s: %s", self.path, exc)


def alternating_medians(ort: Any, reference: Any, pixels: np.ndarray, runs: int) -> ProbeResult:
    """Warm both up, then time ORT and torch in alternation `runs` times; medians in ms."""
    ort.run(pixels)
    reference.run(pixels)
    times: dict[str, list[float]] = {"ort": [], "torch": []}
    for _ in range(runs):
        for name, backend in (("ort", ort), ("torch", reference)):
            start = time.perf_counter()
            backend.run(pixels)
            times[name].append((time.perf_counter() - start) * 1e3)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return ProbeResult(
        ort_ms=float(np.median(times["ort"])),
        torch_ms=float(np.median(times["torch"])),
        runs=runs,
        measured_at=now,
    )
