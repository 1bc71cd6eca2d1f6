"""The driver's decision read from the kept front-camera tokens: the deployable reading.

train/pruned_reading.py measures a reading that plans better than the minimal ego inputs and
tells which tokens matter: a per-cell head turns each front token into its cell's facts (class
shares, inverse depth, colour), the cells a pruner dropped hold nothing, a fixed corridor summary
(nn/corridor.py) says what stands ahead, its change since the keyframe 0.5 s before says how fast
the ego closes on it, and boosted trees read that with the minimal ego inputs into the
acceleration the driver decides. This module is that reading as one torch module, so a planner
or the node can run it: CellHead + CorridorLayout + TreeEnsemble, one safetensors file.

With the full ego status a second tree ensemble may read the pace (train/pace.py): the one
acceleration, held over the 3-s horizon, whose kinematic prior best fits what the ego will do.
The decision is the driver's choice of the moment and too transient to hold for 3 s; the pace is
what the full-status prior should be driven toward, and the measured acceleration says much of
it (the driver's reaction so far). It reads the same corridor and motion plus FULL_STATUS.

Frame memory is the caller's: `forward` returns this frame's corridor, which the caller keeps and
passes back as `previous` with the next keyframe (NaN rows: no predecessor, no motion).
Fitting: train/pruned_reading.py `--save-reader`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.nn.corridor import CorridorLayout, corridor_features
from fastdrive_ros.nn.integrity import verify_file, write_manifest
from fastdrive_ros.nn.tree_ensemble import TreeEnsemble

FORMAT = "fastdrive_ros.decision_reader"
FORMAT_VERSION = "2"  # "2": optional pace trees
READABLE_VERSIONS = ("1", "2")
COLOUR_DIMS = 12  # 2 x 2 half-cells x RGB, stage A's colour target
DEPTH_DIMS = 2  # mean and max inverse depth of the cell
EGO_FEATURES = ("speed", "speed^2 / 10", "command left", "command right")
FULL_STATUS = ("acceleration", "yaw rate", "acceleration 0.5 s before")


def minimal_ego(speed: float, command: str) -> list[float]:
    """The minimal ego inputs as the reader (and the minimal-ego ridge) reads them."""
    return [speed, speed**2 / 10, float(command == "left"), float(command == "right")]


def full_status(ego: EgoState) -> list[float]:
    """What the pace reads beyond the minimal inputs (NaN for an ego with the minimal status).

    The acceleration 0.5 s before comes from the measured status rows; without them (no CAN
    bus) it is taken as the current one.
    """
    if ego.inputs != "full":
        return [math.nan] * len(FULL_STATUS)
    rows = ego.status_rows
    before = float(rows[-2, 0]) if rows is not None else ego.acceleration
    return [ego.acceleration, ego.yaw_rate, before]


class CellHead(nn.Module):
    """Token [.., D] -> its cell's facts: class logits, inverse depth (mean, max), colour."""

    def __init__(self, width: int, classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.width, self.classes, self.hidden = width, classes, hidden
        self.net = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Linear(hidden, classes + DEPTH_DIMS + COLOUR_DIMS),
        )

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(tokens)
        logits, rest = out[..., : self.classes], torch.sigmoid(out[..., self.classes :])
        return logits, rest[..., :DEPTH_DIMS], rest[..., DEPTH_DIMS:]


class DecisionReader(nn.Module):
    """Front tokens [B, n, D] + kept [B, n] + minimal ego [B, 4] (+ previous corridor) -> decision.

    n = rows x cols of `grid`, the front camera's token grid in raster order; dropped tokens'
    rows may hold anything (they are masked). Returns (decision [B] m/s^2 float64, corridor
    [B, F]): keep the corridor for the next keyframe's `previous`. `pace` (optional): trees
    reading the same plus FULL_STATUS (`read_pace`).
    """

    def __init__(
        self,
        *,
        cells: CellHead,
        layout: CorridorLayout,
        grid: tuple[int, int],
        trees: TreeEnsemble,
        pace: TreeEnsemble | None = None,
        meta: dict | None = None,
    ) -> None:
        """meta: how it was fitted and what it read (JSON-able), saved with it."""
        super().__init__()
        expected = len(EGO_FEATURES) + 2 * layout.feature_count
        if trees.features != expected:
            raise ValueError(
                f"the trees read {trees.features} features; ego + corridor + motion are {expected}"
            )
        if pace is not None and pace.features != expected + len(FULL_STATUS):
            raise ValueError(
                f"the pace trees read {pace.features} features; ego + corridor + motion + full "
                f"status are {expected + len(FULL_STATUS)}"
            )
        if cells.classes != layout.num_classes:
            raise ValueError(
                f"the cell head reads {cells.classes} classes, the layout {layout.num_classes}"
            )
        self.cells = cells
        self.layout = layout
        self.grid = (int(grid[0]), int(grid[1]))
        self.trees = trees
        self.pace = pace
        self.meta = dict(meta or {})

    def corridor(self, tokens: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """[B, F]: the corridor summary of the kept cells' facts."""
        cells = self.grid[0] * self.grid[1]
        if tokens.ndim != 3 or tokens.shape[1] != cells or kept.shape != tokens.shape[:2]:
            raise ValueError(
                f"the reader needs front tokens [B, {cells}, D] on its {self.grid[0]}x"
                f"{self.grid[1]} grid and kept [B, {cells}], got {tuple(tokens.shape)} and "
                f"{tuple(kept.shape)}"
            )
        logits, depth, colours = self.cells(tokens.to(self.cells.net[-1].weight))
        keep = kept.to(logits.dtype).unsqueeze(-1)
        return corridor_features(
            F.softmax(logits, -1) * keep, depth * keep, colours * keep, self.grid, self.layout
        )

    def forward(
        self,
        tokens: torch.Tensor,
        kept: torch.Tensor,
        ego: torch.Tensor,
        previous: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        now = self.corridor(tokens, kept)
        return self.trees(_scene_features(ego, now, previous)), now

    def read_pace(
        self,
        ego: torch.Tensor,
        status: torch.Tensor,
        corridor: torch.Tensor,
        previous: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B] the pace (m/s^2 float64) from `forward`'s corridor and the FULL_STATUS [B, 3].

        NaN for rows whose status is NaN (minimal ego inputs) and everywhere without pace trees.
        """
        out = torch.full((len(corridor),), math.nan, dtype=torch.float64, device=corridor.device)
        full = ~status.isnan().any(dim=1)
        if self.pace is None or not bool(full.any()):
            return out
        before = None if previous is None else previous[full]
        x = _scene_features(ego[full], corridor[full], before)
        out[full] = self.pace(torch.cat([x, status[full].to(x)], dim=1))
        return out

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "width": str(self.cells.width),
            "hidden": str(self.cells.hidden),
            "grid": json.dumps(self.grid),
            "layout": self.layout.to_json(),
            "trees": json.dumps({"features": self.trees.features, "depth": self.trees.depth}),
            "meta": json.dumps(self.meta),
        }
        if self.pace is not None:
            header["pace"] = json.dumps({"features": self.pace.features, "depth": self.pace.depth})
        save_file(tensors, str(path), metadata=header)
        write_manifest(path.parent, sorted(f.name for f in path.parent.glob("*.safetensors")))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DecisionReader:
        from safetensors import safe_open

        path = Path(path)
        remedy = "refit it with `python -m fastdrive_ros.train.pruned_reading --save-reader`"
        if not path.is_file():
            raise FileNotFoundError(f"no decision reader at {path}: {remedy}")
        verify_file(path, remedy=remedy)
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        if header.get("format") != FORMAT or header.get("version") not in READABLE_VERSIONS:
            versions = ", ".join(READABLE_VERSIONS)
            raise ValueError(f"{path} is not a {FORMAT} file of version {versions}: {remedy}")
        layout = CorridorLayout.from_json(header["layout"])
        trees = _shaped(tensors, "trees", header["trees"])
        pace = _shaped(tensors, "pace", header["pace"]) if "pace" in header else None
        cells = CellHead(int(header["width"]), layout.num_classes, int(header["hidden"]))
        grid = json.loads(header["grid"])
        meta = json.loads(header.get("meta", "{}"))
        reader = cls(
            cells=cells, layout=layout, grid=(grid[0], grid[1]), trees=trees, pace=pace, meta=meta
        )
        reader.load_state_dict(tensors)
        return reader.eval()

    @staticmethod
    def metadata(path: str | Path) -> dict:
        """The fit's figures saved with the reader (its `meta`), without loading it."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return json.loads((handle.metadata() or {}).get("meta", "{}"))


def _scene_features(
    ego: torch.Tensor, now: torch.Tensor, previous: torch.Tensor | None
) -> torch.Tensor:
    """[B, 4 + 2F] float64: minimal ego, the corridor, its change since `previous` (NaN: none)."""
    before = now if previous is None else torch.where(previous.isnan(), now, previous.to(now))
    return torch.cat([ego.to(torch.float64), now.double(), (now - before).double()], dim=1)


def _shaped(tensors: dict[str, torch.Tensor], prefix: str, shape_json: str) -> TreeEnsemble:
    shape = tensors[f"{prefix}.feature"].shape
    return TreeEnsemble.shaped(shape[0], shape[1], **json.loads(shape_json))
