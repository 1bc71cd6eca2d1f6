"""The driver's decision read from pruned front-camera tokens: which tokens a reading needs.

The dense probe (train/dense_probe.py) reads the decision from a tower's front tokens per cell
and over two keyframes, and is the first reading of ours that buys something over the minimal ego
inputs. Here the same reading sees only the tokens a selector keeps: the cells of dropped tokens
hold nothing (no class, no depth, no colour), as for a planner that never received them, and the
keyframe before is pruned by the same selector (its motion is read from what was kept there too).

One reader (per-cell head, corridor summary, motion, boosted trees) is fitted on the training
world under mixed partial sets: all tokens, and foreground-ranked, background-ranked and random
sets of 25 / 50 / 75 %, so that no selector's sets are out of its distribution. Then every
selector at every ratio on each held-out world: the read decision's correlation with the
recorded one, L2 Avg (m) of the minimal-ego ridge with the read decision, the oracle gap
(anti_oracle - oracle_fg, 95 % scene-bootstrap interval) and where each pruner lands between
them (0 = oracle_fg, 1 = anti_oracle).

Each selector runs on the front camera alone, K = floor(n (1 - p)) of its n tokens; encoder-stage
selectors only (FastV and SparseVLM prune inside the LLM's prefill, after any reading of the
tokens). Synthetic worlds only (decisions, depth maps). Not the planner: this measures what a
planner reading the kept tokens this way could tell apart. `--save-reader PATH` writes the
fitted reading as one torch module (nn/decision_reader.py: the same cell head, corridor and
trees, tokens in, decision out) and checks on the held-out worlds that it reads what was measured.
`python -m fastdrive_ros.train.pruned_reading --tower BUNDLE TRAIN TEST... [--save-reader PATH]`
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fastdrive_ros.eval.bootstrap import Interval, paired_l2_difference
from fastdrive_ros.nn.baselines.vispruner import ATTENTION_KEY
from fastdrive_ros.nn.decision_reader import CellHead, DecisionReader
from fastdrive_ros.nn.probes import FG_SHARE
from fastdrive_ros.nn.registry import selector_stage
from fastdrive_ros.nn.selection import VisualTokens, keep_count
from fastdrive_ros.train.affordance import FRONT_CAMERA
from fastdrive_ros.train.boosted import boosted_fit, tree_ensemble_of
from fastdrive_ros.train.dense_probe import (
    CORRIDOR,
    TREES,
    CellMaps,
    World,
    corridor_features,
    percent_interval,
    score_reading,
    with_motion,
)
from fastdrive_ros.train.images import cell_fraction, read_label
from fastdrive_ros.train.records import KeyframeRecord

DEFAULT_SELECTORS = (
    "oracle_fg",
    "anti_oracle",
    "reconpruner",
    "divprune",
    "vispruner",
    "prune2drive",
    "random",
)
DEFAULT_RATIOS = (0.25, 0.5, 0.75)
# The reader's training views: every keyframe whole and under these selectors at these ratios.
TRAINING_VIEWS: tuple[tuple[str, float], ...] = tuple(
    (name, ratio) for name in ("oracle_fg", "anti_oracle", "random") for ratio in DEFAULT_RATIOS
)


@dataclass(frozen=True)
class EncoderOutput:
    """One world's encoder output as the selectors need it.

    tokens [S, N, D]; fg_share [S, N] ground-truth foreground share per cell (nuScenes-FG
    masks); attention [S, N] attention each token receives (VisPruner); grid_thw [C, 3];
    front: the front camera's token indices (all N when it is the only camera).
    """

    tokens: np.ndarray
    fg_share: np.ndarray
    attention: np.ndarray
    grid_thw: torch.Tensor
    front: slice

    @property
    def front_tokens(self) -> np.ndarray:
        return self.tokens[:, self.front]

    def visual(self, row: int) -> VisualTokens:
        return VisualTokens(
            tokens=torch.as_tensor(self.tokens[row], dtype=torch.float32),
            grid_thw=self.grid_thw,
            aux={
                FG_SHARE: torch.as_tensor(self.fg_share[row], dtype=torch.float32),
                ATTENTION_KEY: torch.as_tensor(self.attention[row], dtype=torch.float32),
            },
        )


def fg_shares(
    records: Sequence[KeyframeRecord],
    image_size: tuple[int, int],
    unit: int,
    *,
    all_cameras: bool = False,
) -> np.ndarray:
    """[S, N] each token cell's foreground share, as the evaluation's oracle reads it.

    The front camera's cells, or with `all_cameras` every camera's in the records' order.
    """

    def shares(record: KeyframeRecord) -> np.ndarray:
        masks = (
            list(zip(record.cameras, record.fg_masks))
            if all_cameras
            else [(FRONT_CAMERA, record.fg_masks[record.cameras.index(FRONT_CAMERA)])]
        )
        return np.concatenate(
            [
                cell_fraction(read_label(mask, image_size, what=f"{name} foreground mask"), unit)
                for name, mask in masks
            ]
        )

    return np.stack([shares(r) for r in records])


def kept_cells(selector: Any, encoded: EncoderOutput, ratio: float) -> np.ndarray:
    """[S, n] True where `selector` keeps the front camera's token at prune ratio `ratio`.

    It keeps K = floor(N (1 - ratio)) of all N tokens; how many of them are the front camera's
    is its own choice (all of them when the front camera is the only one).
    """
    count, n_all = encoded.fg_share.shape
    front = np.arange(n_all)[encoded.front]
    keep = keep_count(n_all, ratio)
    kept = np.zeros((count, n_all), dtype=bool)
    reset = getattr(selector, "reset", None)
    if reset is not None:  # a seeded random selector draws the same sets on every world
        reset()
    with torch.no_grad():
        for row in range(count):
            kept[row, selector.select(encoded.visual(row), keep).kept_index.cpu().numpy()] = True
    return kept[:, front]


def reading_features(world: World, maps: CellMaps, kept: np.ndarray) -> np.ndarray:
    """The reader's input: minimal ego inputs, the corridor of the kept cells, its motion."""
    corridor = corridor_features(maps.masked(kept))
    return np.hstack([world.problem.ego, with_motion(corridor, world.previous)])


def pace_features(world: World, maps: CellMaps, kept: np.ndarray) -> np.ndarray:
    """The pace trees' input: the reader's, then the full status (decision_reader.FULL_STATUS)."""
    return np.hstack([reading_features(world, maps, kept), world.status])


def fit_views(
    world: World,
    maps: CellMaps,
    views: Sequence[np.ndarray],
    features: Callable[[World, CellMaps, np.ndarray], np.ndarray] = reading_features,
) -> tuple[np.ndarray, World]:
    """The training rows: the world's keyframes once per kept-cell view, stacked."""
    x = np.vstack([features(world, maps, kept) for kept in views])
    return x, world.repeated(len(views))


def pruned_reading(
    train: tuple[World, CellMaps, Sequence[np.ndarray]],
    tests: Mapping[str, tuple[World, CellMaps]],
    kept: Mapping[str, Mapping[tuple[str, float], np.ndarray]],
    *,
    trees: int = TREES,
    seed: int = 0,
) -> dict[tuple[str, float], dict[str, dict[str, Any]]]:
    """{(selector, ratio): {held-out world: score_reading's figures}}, one reader for all.

    train: (world, its cell maps, the kept-cell views to fit on); kept: {world: {(selector,
    ratio): [S, n] kept cells}}, the same keys for every world.
    """
    world, maps, views = train
    fit_x, fit_world = fit_views(world, maps, views)
    settings = list(next(iter(kept.values())))
    held = {
        (setting, name): (reading_features(w, m, kept[name][setting]), w)
        for setting in settings
        for name, (w, m) in tests.items()
    }
    # one fit of the reader, every setting of every world read by it
    scored = score_reading(fit_x, fit_world, held, trees=trees, seed=seed)
    return {setting: {name: scored[setting, name] for name in tests} for setting in settings}


def fitted_reader(
    head: CellHead,
    train: tuple[World, CellMaps, Sequence[np.ndarray]],
    *,
    trees: int = TREES,
    seed: int = 0,
    pace: bool = False,
) -> DecisionReader:
    """The reading `pruned_reading` measures, fitted on all of `train`'s views, as one module.

    pace: also the full-status pace trees (train/pace.py), on the same views.
    """
    world, maps, views = train
    fit_x, fit_world = fit_views(world, maps, views)
    model = boosted_fit(fit_x, fit_world.decision, trees=trees, seed=seed)
    pace_trees = None
    if pace:
        pace_x, _ = fit_views(world, maps, views, pace_features)
        pace_trees = tree_ensemble_of(boosted_fit(pace_x, fit_world.pace, trees=trees, seed=seed))
    return DecisionReader(
        cells=head,
        layout=CORRIDOR,
        grid=maps.grid,
        trees=tree_ensemble_of(model),
        pace=pace_trees,
    )


def read_with(
    reader: DecisionReader, tokens: np.ndarray, kept: np.ndarray, world: World
) -> tuple[np.ndarray, np.ndarray]:
    """[S] the reader's decision and [S] pace (NaN without pace trees) for a world's tokens.

    As the node would run it: each keyframe's corridor first, then each keyframe with its
    predecessor's corridor as `previous` (its own where it has none: no motion), the frame
    memory a caller keeps; the pace with the world's full status.
    """
    with torch.no_grad():
        x = torch.as_tensor(tokens, dtype=torch.float32)
        mask = torch.as_tensor(kept, dtype=torch.bool)
        ego = torch.as_tensor(world.problem.ego)
        now = reader.corridor(x, mask)
        before = now[torch.as_tensor(world.previous)]
        decision, corridor = reader(x, mask, ego, previous=before)
        pace = reader.read_pace(ego, torch.as_tensor(world.status), corridor, before)
    return decision.numpy(), pace.numpy()


def above_oracle(
    rows: Mapping[tuple[str, float], Mapping[str, Mapping[str, Any]]],
    scenes: Mapping[str, np.ndarray],
    *,
    seed: int = 0,
) -> dict[tuple[str, float, str], Interval]:
    """{(selector, ratio, world): its L2 Avg - oracle_fg's at the ratio}, 95 % scene bootstrap.

    anti_oracle's entry is the oracle gap: whether the reading can tell which tokens matter at
    all. The others say whether a pruner is told apart from the oracle (paired, same scenes).
    """
    out = {}
    for (name, ratio), worlds in rows.items():
        oracle = rows.get(("oracle_fg", ratio))
        if name == "oracle_fg" or oracle is None:
            continue
        for world, figures in worlds.items():
            out[name, ratio, world] = paired_l2_difference(
                figures["steps"], oracle[world]["steps"], scenes[world], seed=seed
            )
    return out


def between_oracles(
    rows: Mapping[tuple[str, float], Mapping[str, Mapping[str, Any]]],
) -> dict[tuple[str, float], float]:
    """Each setting's place between oracle_fg (0) and anti_oracle (1) at its ratio.

    The mean over worlds of (L2 - oracle) / (anti - oracle); NaN where the oracles do not differ.
    """
    out = {}
    for (name, ratio), worlds in rows.items():
        if ("oracle_fg", ratio) not in rows or ("anti_oracle", ratio) not in rows:
            continue
        places = []
        for world, figures in worlds.items():
            low = rows["oracle_fg", ratio][world]["own"]
            high = rows["anti_oracle", ratio][world]["own"]
            places.append((figures["own"] - low) / (high - low) if high > low else np.nan)
        out[name, ratio] = float(np.mean(places))
    return out


def render_tables(
    rows: Mapping[tuple[str, float], Mapping[str, Mapping[str, Any]]],
    gaps: Mapping[tuple[str, float, str], Interval],
    places: Mapping[tuple[str, float], float],
) -> str:
    """Markdown: L2 / corr per selector and ratio, the distance to the oracle, the places."""
    worlds = list(next(iter(rows.values())))
    ego = " / ".join(f"{rows[next(iter(rows))][w]['ego']:.3f}" for w in worlds)
    lines = [
        "Ego + read decision, L2 Avg (m) (decision corr), per held-out world "
        f"({', '.join(worlds)}); ego alone: {ego}",
        "",
    ]

    def reading(figures: Mapping[str, Mapping[str, Any]]) -> str:
        return " / ".join(f"{figures[w]['own']:.3f} ({figures[w]['corr']:.2f})" for w in worlds)

    lines += _ratio_table(
        ["selector"], {((name,), ratio): reading(f) for (name, ratio), f in rows.items()}
    )
    if gaps:
        lines += [""] + _ratio_table(
            ["L2 Avg above oracle_fg, 95 % interval", "world"],
            {
                ((name, world), ratio): percent_interval(gap)
                for (name, ratio, world), gap in gaps.items()
            },
        )
    if places:
        lines += [""] + _ratio_table(
            ["place between oracle_fg (0) and anti_oracle (1), mean of worlds"],
            {((name,), ratio): f"{place:.2f}" for (name, ratio), place in places.items()},
        )
    return "\n".join(lines)


def _ratio_table(first: Sequence[str], cells: Mapping[tuple[tuple[str, ...], float], str]):
    """Markdown: a row per key (its `first` columns), a column per prune ratio ("–" if none)."""
    ratios = sorted({ratio for _, ratio in cells})
    keys = list(dict.fromkeys(key for key, _ in cells))
    lines = [
        "| " + " | ".join([*first, *(f"{r:.0%} pruned" for r in ratios)]) + " |",
        "|" + "---|" * (len(first) + len(ratios)),
    ]
    for key in keys:
        row = [*key, *(cells.get((key, r), "–") for r in ratios)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def encode(
    bundle: str, records: Sequence[KeyframeRecord], image_size, unit: int, all_cameras: bool
) -> EncoderOutput:
    """The bundle's tower on the records' front camera (or all cameras), with the fg shares."""
    from fastdrive_ros.train.decision_probe import encoder_output

    cameras = records[0].cameras
    if any(r.cameras != cameras for r in records):
        raise ValueError("every keyframe must list its cameras in the same order")
    tokens, attention = encoder_output(bundle, records, all_cameras=all_cameras)
    per_camera = (image_size[0] // unit) * (image_size[1] // unit)
    first = cameras.index(FRONT_CAMERA) if all_cameras else 0
    count = len(cameras) if all_cameras else 1
    return EncoderOutput(
        tokens=tokens,
        fg_share=fg_shares(records, image_size, unit, all_cameras=all_cameras),
        attention=attention,
        grid_thw=torch.tensor([[1, 2 * image_size[0] // unit, 2 * image_size[1] // unit]] * count),
        front=slice(first * per_camera, (first + 1) * per_camera),
    )


def _check_selectors(names: Sequence[str]) -> None:
    for name in names:
        if name in ("shuffled", "no_images", "none"):
            raise ValueError(
                f"{name} is not a pruner: the unpruned reading is always the first row"
            )
        if selector_stage(name, probes=True) != "encoder":
            raise ValueError(
                f"{name} prunes inside the LLM's prefill, after the tokens are read: this probe "
                "runs encoder-stage selectors only"
            )


def main(argv: Sequence[str] | None = None) -> None:
    from fastdrive_ros.nn.vla import VLA
    from fastdrive_ros.train.dense_probe import fit_cell_head, read_cell_maps, world_cell_maps

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tower", required=True, help="bundle whose tower and ReconPruner to use")
    parser.add_argument("train", help="dataset root the cell head and the reader are fitted on")
    parser.add_argument("test", nargs="+", help="held-out dataset roots")
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--pruners", default=",".join(DEFAULT_SELECTORS))
    parser.add_argument("--ratios", default=",".join(str(r) for r in DEFAULT_RATIOS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trees", type=int, default=TREES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--save-reader",
        metavar="PATH",
        help="write the fitted reading (cell head, corridor, trees) as a DecisionReader "
        "safetensors file",
    )
    parser.add_argument(
        "--bundle-out",
        metavar="DIR",
        help="save the tower's bundle with the fitted reading as its planner's decision reader "
        "(its scene reader's decision then comes from it, with frame memory)",
    )
    parser.add_argument(
        "--pace",
        action="store_true",
        help="the saved reading also reads the pace with the full ego status (train/pace.py): "
        "what the full-status decision prior is driven toward",
    )
    parser.add_argument(
        "--cameras",
        choices=("front", "all"),
        default="front",
        help="selectors see the front camera alone (K of its tokens) or all cameras (K of all, "
        "as `fastdrive eval` prunes: the front camera gets what the selector gives it; 6x the "
        "encoder time)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.pruners.split(",") if n.strip()]
    ratios = [float(r) for r in args.ratios.split(",")]
    _check_selectors(names)
    if any(not 0 < r < 1 for r in ratios):
        raise SystemExit(f"--ratios must lie in (0, 1), got {ratios}")
    torch.set_num_threads(args.threads)
    vla = VLA.from_pretrained(args.tower)
    if args.bundle_out and getattr(vla.planner, "scene_reader", None) is None:
        raise SystemExit(
            f"--bundle-out: {args.tower}'s planner has no scene reader for the reading to feed; "
            "give a bundle trained with `train-planner --scene-reader` (stage 4b), or use "
            "--save-reader"
        )
    image_size = tuple(vla.config.image_size)
    unit = vla.vision.patch_size * vla.vision.merge_size
    worlds, encoded, maps = {}, {}, {}
    for root in [args.train, *args.test]:
        records, worlds[root] = World.read(root, args.version)
        encoded[root] = encode(args.tower, records, image_size, unit, args.cameras == "all")
        maps[root] = world_cell_maps(records, image_size, unit)
    head = fit_cell_head(encoded[args.train].front_tokens, maps[args.train], seed=args.seed)
    read = {w: read_cell_maps(head, e.front_tokens, maps[w].grid) for w, e in encoded.items()}

    def selector(name: str) -> Any:
        if name == "random":
            return vla.make_selector(name, seed=args.seed)
        return vla.make_selector(name)

    everything = {w: np.ones(m.classes.shape[:2], dtype=bool) for w, m in maps.items()}
    views = [everything[args.train]] + [
        kept_cells(selector(name), encoded[args.train], ratio) for name, ratio in TRAINING_VIEWS
    ]
    kept = {}
    for w in args.test:
        kept[w] = {("none", 0.0): everything[w]}
        for name in names:
            chosen = selector(name)
            kept[w].update({(name, r): kept_cells(chosen, encoded[w], r) for r in ratios})
    rows = pruned_reading(
        (worlds[args.train], read[args.train], views),
        {w: (worlds[w], read[w]) for w in args.test},
        kept,
        trees=args.trees,
        seed=args.seed,
    )
    scenes = {w: worlds[w].scenes for w in args.test}
    print(render_tables(rows, above_oracle(rows, scenes, seed=args.seed), between_oracles(rows)))
    if args.save_reader or args.bundle_out:
        train = (worlds[args.train], read[args.train], views)
        reader = fitted_reader(head, train, trees=args.trees, seed=args.seed, pace=args.pace)
        check, pace_check = {}, {}
        for w in args.test:
            decision, pace = read_with(reader, encoded[w].front_tokens, everything[w], worlds[w])
            check[w] = round(float(np.corrcoef(decision, worlds[w].decision)[0, 1]), 3)
            if args.pace:
                pace_check[w] = round(float(np.corrcoef(pace, worlds[w].pace)[0, 1]), 3)
        reader.meta = {
            "tower": args.tower,
            "train": args.train,
            "seed": args.seed,
            "trees": args.trees,
            "views": ["all", *map(str, TRAINING_VIEWS)],
            "corr": check,
            **({"pace_corr": pace_check} if args.pace else {}),
        }
        if args.save_reader:
            reader.save(args.save_reader)
        if args.bundle_out:
            vla.add_decision_reader(reader)
            vla.save_pretrained(args.bundle_out)
        measured = " / ".join(f"{rows['none', 0.0][w]['corr']:.2f}" for w in args.test)
        print(
            f"\nsaved the reading ({args.save_reader or args.bundle_out}); its decision corr on "
            f"the held-out worlds, all tokens: {' / '.join(f'{c:.2f}' for c in check.values())} "
            f"(measured above: {measured})"
            + (
                f"; its pace corr: {' / '.join(f'{c:.2f}' for c in pace_check.values())}"
                if args.pace
                else ""
            )
        )


if __name__ == "__main__":
    main()
