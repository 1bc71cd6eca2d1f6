"""What stands in the ego's corridor, summarised from the front camera's per-cell facts.

A fixed summary, not a learnt one: with ~1600 training keyframes a fixed prior on where to look
generalises to unseen worlds and a learnt pooling does not (README, "Read per cell and over
time"). Per band of the front image's columns (the ego's lane, and the lane with its neighbours)
and per group of classes (vehicle, human, cyclist, crossing): how near the nearest cell of the
group is, the mean of the three nearest, and how much of the band it fills; the light's red and
green; the nearest obstacle on the road. Cells a pruner dropped hold nothing (all zeros), so the
summary sees only what was kept.

The class channels are the tower's (stage A's class table); which channel means what comes with
the summary's CorridorLayout, so this module needs nothing from the data side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch

Band = tuple[float, float]


@dataclass(frozen=True)
class CorridorLayout:
    """Which class channels the summary reads, and where in the front image it looks.

    groups: (name, class ids) in feature order; road / open: ids of the drivable surface and of
    what never blocks (sky, buildings, vegetation); light: the traffic-light id; bands: column
    spans as fractions of the width (narrow first: the obstacle feature reads it); light_rows:
    upper share of rows where lights hang, light_band: their column span.
    """

    num_classes: int
    groups: tuple[tuple[str, tuple[int, ...]], ...]
    road: tuple[int, ...]
    open: tuple[int, ...]
    light: int
    bands: tuple[Band, ...] = ((0.39, 0.61), (0.28, 0.72))
    light_rows: float = 0.6
    light_band: Band = (0.22, 0.78)

    @property
    def feature_count(self) -> int:
        return 3 * len(self.bands) * len(self.groups) + 5 + 1

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CorridorLayout:
        raw = json.loads(text)
        return cls(
            num_classes=int(raw["num_classes"]),
            groups=tuple((str(name), tuple(ids)) for name, ids in raw["groups"]),
            road=tuple(raw["road"]),
            open=tuple(raw["open"]),
            light=int(raw["light"]),
            bands=tuple((float(a), float(b)) for a, b in raw["bands"]),
            light_rows=float(raw["light_rows"]),
            light_band=(float(raw["light_band"][0]), float(raw["light_band"][1])),
        )


def _columns(width: int, band: Band) -> slice:
    return slice(int(round(band[0] * width)), int(round(band[1] * width)))


def corridor_features(
    classes: torch.Tensor,
    depth: torch.Tensor,
    colours: torch.Tensor,
    grid: tuple[int, int],
    layout: CorridorLayout,
) -> torch.Tensor:
    """[S, layout.feature_count] from per-cell facts on a (rows, cols) grid of n cells.

    classes [S, n, C] shares; depth [S, n, 2] mean / max inverse depth (0..1); colours
    [S, n, 12] mean colour of the 2 x 2 half-cells (0..1).
    """
    rows, cols = grid
    count = classes.shape[0]
    if classes.shape[1:] != (rows * cols, layout.num_classes):
        raise ValueError(
            f"classes must be [S, {rows * cols}, {layout.num_classes}] for a {rows}x{cols} grid, "
            f"got {tuple(classes.shape)}"
        )
    cells = classes.reshape(count, rows, cols, -1)
    near = depth[..., 1].reshape(count, rows, cols)
    colour = colours.reshape(count, rows, cols, 4, 3).mean(3)
    out: list[torch.Tensor] = []
    for band in layout.bands:
        span = _columns(cols, band)
        for _, ids in layout.groups:
            share = cells[:, :, span, list(ids)].sum(-1)
            closeness = (share * near[:, :, span]).reshape(count, -1)
            top = closeness.topk(min(3, closeness.shape[1]), dim=1).values
            out += [top[:, 0], top.mean(1), share.reshape(count, -1).sum(1) / rows]
    top_rows = slice(0, max(1, int(round(layout.light_rows * rows))))
    span = _columns(cols, layout.light_band)
    light = cells[:, top_rows, span, layout.light]
    red_excess = colour[:, top_rows, span, 0] - colour[:, top_rows, span, 1]
    for excess in (red_excess.clamp(min=0), (-red_excess).clamp(min=0)):
        lit = (light * excess).reshape(count, -1)
        out += [lit.amax(1), lit.sum(1)]
    mean_near = depth[..., 0].reshape(count, rows, cols)
    out.append((light * mean_near[:, top_rows, span]).reshape(count, -1).amax(1))
    narrow = _columns(cols, layout.bands[0])
    other = 1 - cells[:, :, narrow, list(layout.road + layout.open)].sum(-1)
    out.append((other.clamp(0, 1) * near[:, :, narrow]).reshape(count, -1).amax(1))
    return torch.stack(out, 1)
