"""What a planner remembers of recent frames: the decision reader's corridor, by time.

One frame shows where something stands, not how fast the ego closes on it; the decision reader
(nn/decision_reader.py) reads that from the change of its corridor since the keyframe 0.5 s
before, the spacing it was fitted on. The node plans at its own pace (frames dropped while the
model is busy), the evaluation keyframe by keyframe: both keep a FrameMemory and ask it, per
frame, for the slot of that frame's time. A slot hands the corridor remembered about `lag_s`
earlier (none in the window: first frame, a gap, another scene or a replay that jumped back;
the reader then reads no motion) and keeps this frame's for the frames after it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch

LAG_S = 0.5  # the keyframe spacing the reader's motion was fitted on


class FrameMemory:
    """Corridors of the last `horizon_s` seconds of one stream (one camera rig, one run)."""

    def __init__(
        self, *, lag_s: float = LAG_S, tolerance_s: float = 0.15, horizon_s: float = 2.0
    ) -> None:
        if not 0 < tolerance_s < lag_s < horizon_s:
            raise ValueError(
                f"need 0 < tolerance_s < lag_s < horizon_s, got {tolerance_s}, {lag_s}, "
                f"{horizon_s}"
            )
        self.lag_s, self.tolerance_s, self.horizon_s = lag_s, tolerance_s, horizon_s
        self._frames: deque[tuple[float, torch.Tensor]] = deque()
        self._source: str | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def at(self, stamp_s: float, source: str = "") -> FrameSlot:
        """The slot of the frame at `stamp_s` of `source` (a scene, a sensor rig).

        Another source, or a time at or before the newest remembered one (a replay looped),
        starts the memory afresh.
        """
        newest = self._frames[-1][0] if self._frames else None
        if source != self._source or (newest is not None and stamp_s <= newest):
            self._frames.clear()
            self._source = source
        while self._frames and stamp_s - self._frames[0][0] > self.horizon_s:
            self._frames.popleft()
        return FrameSlot(self, stamp_s, self._closest(stamp_s - self.lag_s))

    def _closest(self, target_s: float) -> torch.Tensor | None:
        best = min(self._frames, key=lambda f: abs(f[0] - target_s), default=None)
        if best is None or abs(best[0] - target_s) > self.tolerance_s:
            return None
        return best[1]

    def _keep(self, stamp_s: float, corridor: torch.Tensor) -> None:
        if self._frames and stamp_s <= self._frames[-1][0]:
            return  # a slot kept late (after a newer frame's): the newer one stays
        self._frames.append((stamp_s, corridor.detach()))


@dataclass(frozen=True)
class FrameSlot:
    """One frame's view of the memory: the corridor lag_s before it; where to keep its own."""

    memory: FrameMemory
    stamp_s: float
    previous: torch.Tensor | None

    def keep(self, corridor: torch.Tensor) -> None:
        """Remember this frame's corridor [F] for the frames after it."""
        self.memory._keep(self.stamp_s, corridor)
