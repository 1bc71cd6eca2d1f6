"""Thread-safe named event counters ("received/CAM_FRONT", "dropped/superseded", ...).

Names are "group/detail"; `group_total` sums a group. Every anchor (front) image the pipeline
accepts ends as exactly one of: processed, dropped/<reason>, or still pending; the tests check
frames/received == processed + dropped + pending.
"""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """A locked Counter; cheap enough for the camera callbacks."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def group_total(self, group: str) -> int:
        """Sum of every counter named `group/...`."""
        prefix = group + "/"
        with self._lock:
            return sum(v for k, v in self._counts.items() if k.startswith(prefix))

    def group(self, group: str) -> dict[str, int]:
        """Counts of the counters named `group/detail`, keyed by detail."""
        prefix = group + "/"
        with self._lock:
            return {k[len(prefix) :]: v for k, v in self._counts.items() if k.startswith(prefix)}

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))
