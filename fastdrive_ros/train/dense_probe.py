"""Dense probe: where between the world's facts and a tower's tokens the driver's decision is lost.

The decision probe (train/decision_probe.py) learns one attention pooling over the front tokens
from ~1600 labelled keyframes and reads the decision poorly on unseen worlds. This probe splits
that reading in two steps with far more supervision for the first:

1. per-cell facts of the front camera: each token cell's class shares, inverse depth (mean,
   max) and colour, either exact from the synthetic world's class and depth maps (`world`), or
   read from the tower's tokens by a per-cell head fitted on the training world's cells
   (`tokens`: ~300k cells instead of ~1600 keyframes);
2. a fixed summary of what stands in the ego's corridor (`corridor_features`: the nearest
   vehicle, person, cyclist and crossing in a narrow and a wide central band, a red or green
   light, the nearest obstacle on the road), for the keyframe alone or with its change since the
   keyframe 0.5 s before (`+ motion`: how fast the ego closes on it), read into the decided
   acceleration by gradient-boosted trees fitted on the training world.

Next to them the world's own labels (kind + gap of the binding constraint, + its closing speed)
as the ceiling. Reported per held-out world: the held-out correlation of the read and the
recorded decision, and L2 Avg (m) of the minimal-ego ridge with the read decision from the
keyframe's own frames and from another scene's (train/decision_probe.py's protocol), with the
gain over the ego inputs and the content effect as 95 % scene-bootstrap intervals. Synthetic
worlds only: real nuScenes has neither the driver's decisions nor depth maps.
`python -m fastdrive_ros.train.dense_probe --tower BUNDLE TRAIN TEST...`
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fastdrive_ros.data.layout import CLASS_ID
from fastdrive_ros.data.world_labels import SceneLabel
from fastdrive_ros.eval.bootstrap import Interval, l2_avg, paired_l2_difference
from fastdrive_ros.nn.corridor import CorridorLayout
from fastdrive_ros.nn.corridor import corridor_features as corridor_features_of
from fastdrive_ros.nn.decision_reader import CellHead, full_status
from fastdrive_ros.train.affordance import FRONT_CAMERA
from fastdrive_ros.train.boosted import boosted_fit
from fastdrive_ros.train.decision_probe import front_tokens, other_scene_rows, with_read
from fastdrive_ros.train.images import NUM_CLASSES
from fastdrive_ros.train.pace import pace_labels
from fastdrive_ros.train.records import KeyframeRecord, previous_rows, sample_chain
from fastdrive_ros.train.scene_probe import label_features
from fastdrive_ros.train.token_probe import MinimalProblem, _ridge
from fastdrive_ros.train.vision import CameraImageDataset

# The stage-A class table's channels as the corridor summary reads them (nn/corridor.py).
CORRIDOR = CorridorLayout(
    num_classes=NUM_CLASSES,
    groups=(
        ("vehicle", (CLASS_ID["vehicle"], CLASS_ID["barrier"], CLASS_ID["traffic_cone"])),
        ("human", (CLASS_ID["human"],)),
        ("cyclist", (CLASS_ID["cyclist"],)),
        ("crossing", (CLASS_ID["crossing"],)),
    ),
    road=(CLASS_ID["road"], CLASS_ID["lane_marking"], CLASS_ID["crossing"]),
    open=(CLASS_ID["sky"], CLASS_ID["building"], CLASS_ID["vegetation"]),
    light=CLASS_ID["traffic_light"],
)


@dataclass(frozen=True)
class CellMaps:
    """Per-cell facts of one camera over S keyframes on a (rows, cols) token grid.

    classes [S, n, NUM_CLASSES] shares (rows sum to 1), depth [S, n, 2] mean / max inverse
    depth (0..1), colours [S, n, 12] mean colour of the 2 x 2 half-cells (0..1).
    """

    classes: np.ndarray
    depth: np.ndarray
    colours: np.ndarray
    grid: tuple[int, int]

    def as_targets(self) -> np.ndarray:
        return np.concatenate([self.classes, self.depth, self.colours], -1).astype(np.float32)

    def masked(self, kept: np.ndarray) -> CellMaps:
        """The maps as seen through the `kept` [S, n] cells only.

        The rest hold nothing (no class, no depth, no colour): tokens a pruner dropped never
        reach the planner.
        """
        kept = np.asarray(kept, dtype=bool)
        if kept.shape != self.classes.shape[:2]:
            raise ValueError(f"kept must be {self.classes.shape[:2]}, got {kept.shape}")
        keep = kept[..., None]
        return CellMaps(self.classes * keep, self.depth * keep, self.colours * keep, self.grid)


def world_cell_maps(
    records: Sequence[KeyframeRecord], image_size: tuple[int, int], unit: int
) -> CellMaps:
    """The front camera's exact cell facts: stage A's targets (train/vision.CameraImageDataset)."""
    dataset = CameraImageDataset(records=records, image_size=image_size, unit=unit)
    position = {item: k for k, item in enumerate(dataset.items)}
    items = []
    for i, record in enumerate(records):
        k = position.get((i, record.cameras.index(FRONT_CAMERA)))
        if k is None or not dataset.with_depth:
            raise ValueError(
                f"keyframe {record.token} has no {FRONT_CAMERA} class or depth map (or another "
                "image lacks one): the dense probe needs the synthetic world's class_maps/ and "
                "depth_maps/"
            )
        items.append(dataset[k])
    grid = (image_size[0] // unit, image_size[1] // unit)
    classes, depth, colours = (
        np.stack([item[key].numpy() for item in items]) for key in ("classes", "depth", "colours")
    )
    return CellMaps(classes, depth, colours, grid)


def fit_cell_head(
    tokens: np.ndarray, maps: CellMaps, *, epochs: int = 6, seed: int = 0
) -> CellHead:
    """A CellHead fitted on every cell of `tokens` [S, n, D] (stage A's loss: soft CE + MSE)."""
    torch.manual_seed(seed)
    x = torch.as_tensor(tokens, dtype=torch.float32).reshape(-1, tokens.shape[-1])
    y = torch.from_numpy(maps.as_targets().reshape(len(x), -1))
    head = CellHead(x.shape[-1], NUM_CLASSES)
    optimizer = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(1024):
            logits, depth, colours = head(x[batch])
            target = y[batch]
            loss = (
                -(target[:, :NUM_CLASSES] * F.log_softmax(logits, -1)).sum(-1).mean()
                + 10 * F.mse_loss(depth, target[:, NUM_CLASSES : NUM_CLASSES + 2])
                + F.mse_loss(colours, target[:, NUM_CLASSES + 2 :])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


def read_cell_maps(head: CellHead, tokens: np.ndarray, grid: tuple[int, int]) -> CellMaps:
    """The cell facts `head` reads from `tokens` [S, n, D]."""
    with torch.no_grad():
        logits, depth, colours = head(torch.as_tensor(tokens, dtype=torch.float32))
    return CellMaps(F.softmax(logits, -1).numpy(), depth.numpy(), colours.numpy(), grid)


def corridor_features(maps: CellMaps) -> np.ndarray:
    """[S, F] what stands in the ego's corridor, from the cell facts (nn/corridor.py)."""
    return corridor_features_of(
        *(torch.from_numpy(np.asarray(a)) for a in (maps.classes, maps.depth, maps.colours)),
        maps.grid,
        CORRIDOR,
    ).numpy()


def with_motion(features: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The features and their change since the previous keyframe (rows `previous`)."""
    return np.hstack([features, features - features[previous]])


@dataclass(frozen=True)
class World:
    """One world's keyframes as the probe needs them."""

    problem: MinimalProblem
    decision: np.ndarray
    scenes: np.ndarray
    previous: np.ndarray
    labels: dict[str, np.ndarray]  # label_features groups
    status: np.ndarray  # [S, 3] the full status the pace reads (decision_reader.FULL_STATUS)
    pace: np.ndarray  # [S] train/pace.py's label

    @classmethod
    def of(
        cls,
        records: Sequence[KeyframeRecord],
        labels: Mapping[str, SceneLabel],
        chain: Mapping[str, str],
    ) -> World:
        groups = label_features(records, labels)  # refuses worlds without decisions
        return cls(
            problem=MinimalProblem.of(records),
            decision=groups["decision"][:, 0],
            scenes=np.array([r.scene for r in records]),
            previous=previous_rows(records, chain),
            labels=groups,
            status=np.array([full_status(r.ego) for r in records], dtype=np.float64),
            pace=pace_labels(records),
        )

    @classmethod
    def read(cls, root: str, version: str) -> tuple[list[KeyframeRecord], World]:
        """A dataset root's keyframes and their World (labels and sample chain from the root)."""
        from fastdrive_ros.data.world_labels import read_scene_labels
        from fastdrive_ros.train.records import read_records

        records = read_records(dataroot=root, version=version, progress=False)
        return records, cls.of(records, read_scene_labels(root), sample_chain(root, version))

    def repeated(self, times: int) -> World:
        """The same keyframes `times` over, for one fit on several views of each.

        Scene names repeat, so scene folds keep every copy of a scene together.
        """
        problem = self.problem
        return World(
            problem=MinimalProblem(
                ego=np.tile(problem.ego, (times, 1)),
                prior=np.tile(problem.prior, (times, 1, 1)),
                future=np.tile(problem.future, (times, 1, 1)),
                valid=np.tile(problem.valid, (times, 1)),
            ),
            decision=np.tile(self.decision, times),
            scenes=np.tile(self.scenes, times),
            previous=np.concatenate(
                [self.previous + k * len(self.decision) for k in range(times)]
            ),
            labels={k: np.tile(v, (times, 1)) for k, v in self.labels.items()},
            status=np.tile(self.status, (times, 1)),
            pace=np.tile(self.pace, times),
        )


TREES = 300


def read_decision(
    train_x: np.ndarray,
    train: World,
    tests: Sequence[np.ndarray],
    *,
    folds: int = 5,
    trees: int = TREES,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The decision read by boosted trees from each row's features.

    Cross-fitted on the training world (scene folds), and on each test world from a fit on all
    of the training world.
    """
    crossed = np.zeros(len(train_x))
    names = np.array(sorted(set(train.scenes)))
    if len(names) < 2:
        raise ValueError("the training world needs at least 2 scenes to cross-fit the reading")
    for fold in np.array_split(names, min(folds, len(names))):
        held = np.isin(train.scenes, fold)
        fold_model = boosted_fit(train_x[~held], train.decision[~held], trees=trees, seed=seed)
        crossed[held] = fold_model.predict(train_x[held])
    model = boosted_fit(train_x, train.decision, trees=trees, seed=seed)
    return crossed, [model.predict(x) for x in tests]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN where either side is constant (e.g. trees that found nothing)."""
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def score_reading(
    train_x: np.ndarray,
    train: World,
    tests: Mapping[Hashable, tuple[np.ndarray, World]],
    *,
    trees: int = TREES,
    seed: int = 0,
) -> dict[Hashable, dict[str, Any]]:
    """Per test world (or any keyed set of test rows): what the read decision tells and buys.

    corr (read vs recorded decision); L2 Avg (m) of the ridge on the minimal ego inputs (ego),
    plus the read decision (own), plus another scene's (shuffled); gain (ego - own) and content
    (shuffled - own) as scene-bootstrap Intervals; steps: the own row's [S, 6] step errors.
    """
    names = list(tests)
    crossed, reads = read_decision(
        train_x, train, [tests[n][0] for n in names], trees=trees, seed=seed
    )
    rng = np.random.default_rng(seed)
    fit_x, fit_y = with_read(train.problem, crossed), train.problem.target
    out: dict[str, dict[str, Any]] = {}
    for name, read in zip(names, reads):
        world = tests[name][1]
        partner = other_scene_rows(world.scenes, rng)
        problem = world.problem
        steps = {
            "ego": problem.step_errors(_ridge(train.problem.ego, fit_y, problem.ego, 1.0)),
            "own": problem.step_errors(_ridge(fit_x, fit_y, with_read(problem, read), 1.0)),
            "shuffled": problem.step_errors(
                _ridge(fit_x, fit_y, with_read(problem, read[partner]), 1.0)
            ),
        }
        out[name] = {
            "corr": _corr(read, world.decision),
            **{key: l2_avg(value) for key, value in steps.items()},
            # how much the read decision buys over the minimal ego inputs, and how much of it
            # is this keyframe's (95 % scene-bootstrap intervals, in % of the own L2)
            "gain": paired_l2_difference(steps["ego"], steps["own"], world.scenes, seed=seed),
            "content": paired_l2_difference(
                steps["shuffled"], steps["own"], world.scenes, seed=seed
            ),
            "steps": steps["own"],
        }
    return out


Source = Callable[[str], np.ndarray]  # world name -> [S, F] features


def dense_probe(
    worlds: Mapping[str, World],
    maps: Mapping[str, Mapping[str, CellMaps]],
    train: str,
    *,
    trees: int = TREES,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{reading: {held-out world: figures}} for the labels and each source of cell maps.

    maps: {source ("world", "tokens"): {world name: CellMaps}}; every world in `worlds`.
    """
    sources: dict[str, Source] = {
        "labels: kind + gap": lambda w: worlds[w].labels["facts"],
        "labels: + closing speed": lambda w: np.hstack(
            [worlds[w].labels["facts"], worlds[w].labels["closing"]]
        ),
    }
    for source, per_world in maps.items():
        features = {w: corridor_features(m) for w, m in per_world.items()}
        sources[f"{source} cells"] = lambda w, f=features: f[w]
        sources[f"{source} cells + motion"] = lambda w, f=features: with_motion(
            f[w], worlds[w].previous
        )
    held = [w for w in worlds if w != train]
    rows = {}
    for name, source in sources.items():
        x = {w: np.hstack([worlds[w].problem.ego, source(w)]) for w in worlds}
        rows[name] = score_reading(
            x[train], worlds[train], {w: (x[w], worlds[w]) for w in held}, trees=trees, seed=seed
        )
    return rows


def percent_interval(interval: Interval) -> str:
    return (
        f"{interval.relative:+.1f} % [{interval.relative_low:+.1f}, {interval.relative_high:+.1f}]"
    )


def render_table(rows: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Markdown: a row per (reading, held-out world); gain = ego - own, content = another - own."""
    lines = [
        "| reading | world | decision corr | ego (m) | ego + read (m) | another scene's (m) "
        "| gain over ego | content effect |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for reading, worlds in rows.items():
        for world, f in worlds.items():
            lines.append(
                f"| {reading} | {world} | {f['corr']:.2f} | {f['ego']:.3f} | {f['own']:.3f} "
                f"| {f['shuffled']:.3f} | {percent_interval(f['gain'])} "
                f"| {percent_interval(f['content'])} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from fastdrive_ros.nn.vla import VLA

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tower", required=True, help="bundle whose tower's tokens to read")
    parser.add_argument("train", help="dataset root the heads and readers are fitted on")
    parser.add_argument("test", nargs="+", help="held-out dataset roots")
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seed", type=int, default=0, help="of the per-cell head, the trees and the pairing"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    vla = VLA.from_pretrained(args.tower)
    image_size = tuple(vla.config.image_size)
    unit = vla.vision.patch_size * vla.vision.merge_size
    worlds, exact, tokens = {}, {}, {}
    for root in [args.train, *args.test]:
        records, worlds[root] = World.read(root, args.version)
        exact[root] = world_cell_maps(records, image_size, unit)
        tokens[root] = front_tokens(args.tower, records)
    head = fit_cell_head(tokens[args.train], exact[args.train], seed=args.seed)
    read = {w: read_cell_maps(head, t, exact[w].grid) for w, t in tokens.items()}
    rows = dense_probe(worlds, {"world": exact, "tokens": read}, args.train, seed=args.seed)
    print(render_table(rows))


if __name__ == "__main__":
    main()
