"""How close annotation-derived masks (`fastdrive masks`) come to exact masks (synthetic data).

    python -m fastdrive_ros.data.bench_masks --dataroot DIR --version v1.0-synth [--out MASKDIR]

builds masks with class maps (into a temporary folder unless --out), then prints IoU, precision
and recall of the whole FG mask and per class, summed over all images (dataset-level IoU). "road
surface" compares the exact road + lane marking + crossing pixels with the projected drivable area
and crossings. Traffic signs and lights are not nuScenes annotations: their rows show what the
annotations alone miss (a segmenter would add them).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer

from fastdrive_ros.data.errors import DatasetError
from fastdrive_ros.data.layout import CLASS_ID, class_map_path, fg_mask_path

# row name -> (exact class names, predicted class names); "foreground" uses the FG masks
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "road surface": (("road", "lane_marking", "crossing"), ("road", "crossing")),
    "crossing": (("crossing",), ("crossing",)),
    "vehicle": (("vehicle",), ("vehicle",)),
    "human": (("human",), ("human",)),
    "cyclist": (("cyclist",), ("cyclist",)),
    "barrier": (("barrier",), ("barrier",)),
    "traffic_cone": (("traffic_cone",), ("traffic_cone",)),
    "traffic_sign": (("traffic_sign",), ()),
    "traffic_light": (("traffic_light",), ()),
}


@dataclass
class ClassScore:
    """Pixel counts summed over images; IoU / precision / recall derived from them."""

    name: str
    intersection: int = 0
    predicted: int = 0
    exact: int = 0

    @property
    def union(self) -> int:
        """Pixels in either mask."""
        return self.predicted + self.exact - self.intersection

    @property
    def iou(self) -> float:
        """Intersection over union (nan when neither mask has a pixel)."""
        return self.intersection / self.union if self.union else float("nan")

    @property
    def precision(self) -> float:
        """Share of predicted pixels that are exact."""
        return self.intersection / self.predicted if self.predicted else float("nan")

    @property
    def recall(self) -> float:
        """Share of exact pixels that are predicted."""
        return self.intersection / self.exact if self.exact else float("nan")

    def add(self, predicted: np.ndarray, exact: np.ndarray) -> None:
        """Accumulate one image's boolean masks."""
        self.intersection += int(np.count_nonzero(predicted & exact))
        self.predicted += int(np.count_nonzero(predicted))
        self.exact += int(np.count_nonzero(exact))


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"mask file {path} is missing or unreadable")
    return image


def compare_masks(
    *,
    dataroot: str | Path,
    mask_root: str | Path,
    image_relpaths: Sequence[str],
) -> list[ClassScore]:
    """Scores of the masks/class maps under `mask_root` against the exact ones in `dataroot`."""
    ids = {name: [CLASS_ID[c] for c in classes] for name, (classes, _) in GROUPS.items()}
    pred_ids = {name: [CLASS_ID[c] for c in classes] for name, (_, classes) in GROUPS.items()}
    scores = {"foreground": ClassScore("foreground")}
    scores.update({name: ClassScore(name) for name in GROUPS})
    for rel in image_relpaths:
        exact_fg = _read(fg_mask_path(dataroot, rel)) > 127
        pred_fg = _read(fg_mask_path(mask_root, rel)) > 127
        if exact_fg.shape != pred_fg.shape:
            raise DatasetError(f"mask sizes differ for {rel}: {exact_fg.shape} vs {pred_fg.shape}")
        scores["foreground"].add(pred_fg, exact_fg)
        exact_cls = _read(class_map_path(dataroot, rel))
        pred_cls = _read(class_map_path(mask_root, rel))
        for name in GROUPS:
            scores[name].add(np.isin(pred_cls, pred_ids[name]), np.isin(exact_cls, ids[name]))
    return list(scores.values())


def print_scores(scores: Sequence[ClassScore], title: str) -> None:
    """A rich table of the scores."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("class", "IoU", "precision", "recall", "exact px share"):
        table.add_column(column, justify="left" if column == "class" else "right")
    total = max(1, next(s.exact for s in scores if s.name == "foreground"))
    for s in scores:
        table.add_row(
            s.name,
            f"{s.iou:.3f}",
            f"{s.precision:.3f}",
            f"{s.recall:.3f}",
            f"{s.exact / total:.3f}",
        )
    Console().print(table)


def main(
    dataroot: Annotated[Path, typer.Option(help="Dataroot with exact fg_masks/ and class_maps/.")],
    version: Annotated[str, typer.Option(help="Table folder name, e.g. v1.0-synth.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to build masks (default: a temporary folder).")
    ] = None,
    sweeps: Annotated[bool, typer.Option(help="Also compare the 12 Hz sweep images.")] = False,
    min_visibility: Annotated[
        int, typer.Option(min=1, max=4, help="Skip boxes less visible than this level.")
    ] = 1,
) -> None:
    """Build annotation masks for a synthetic dataset and score them against the exact masks."""
    from fastdrive_ros.data.fg_masks import MaskConfig, build_masks
    from fastdrive_ros.data.reader import NuScenesReader

    if out is not None and out.resolve() == dataroot.resolve():
        raise typer.BadParameter("--out must not be the dataroot (it holds the exact masks)")
    reader = NuScenesReader(dataroot=dataroot, version=version, full_future_only=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = out or Path(tmp)
        start = time.perf_counter()
        summary = build_masks(
            dataroot=dataroot,
            version=version,
            out=root,
            sweeps=sweeps,
            class_maps=True,
            overwrite=True,
            config=MaskConfig(min_visibility=min_visibility),
            reader=reader,
        )
        build_s = time.perf_counter() - start
        rels = [
            f.relpath
            for name in reader.all_scenes()
            for f in reader.camera_frames(name, keyframes_only=not sweeps)
        ]
        scores = compare_masks(dataroot=dataroot, mask_root=root, image_relpaths=rels)
    print_scores(scores, f"fastdrive masks vs exact masks: {len(rels)} images of {dataroot}")
    typer.echo(
        f"built {summary.images} masks in {build_s:.1f} s "
        f"({summary.images / max(build_s, 1e-9):.1f} img/s)"
    )


if __name__ == "__main__":
    typer.run(main)
