"""Decision probe: whether a frozen tower's front-camera tokens tell what the driver decides.

The scene probe (train/scene_probe.py) shows the driver's decided acceleration is what a
minimal-ego planner most needs from its cameras. This probe asks whether a tower's tokens carry
it: a pooled head (nn/scene_reader.SceneHead, its decision output: one learned query over
the front camera's tokens, then the speed) is fitted on the training world, its predictions are
added to the minimal ego inputs of the scene probe's ridge, and L2 Avg (m) is scored on held-out
worlds with each keyframe's own tokens and with another scene's (the content effect). The ridge
is fitted on cross-fitted predictions (scene folds), so it weighs them as they are on unseen
frames. A reader that helps here has found real signal; one that does not may still exist
(a planner reads all six cameras and is trained end to end).

One frame cannot show how fast the ego closes on what binds it, which the scene probe values at
about as much as everything one frame shows. `--frames 1 2` adds a row per tower for a two-frame
head (nn/scene_reader.MotionHead: the same pooling on the keyframe and on the one before it,
0.5 s earlier, from the dataset's sample chain); `--target closing_speed` reads that speed instead
of the decision, to see whether motion is in the tokens at all.
With 48 training scenes a head learns the scenes, not the rule; `--also-train ROOT...` fits the
heads and the ridge on more training worlds (scenes kept apart per world in the folds).
`python -m fastdrive_ros.train.decision_probe --towers A B [--frames 1 2] -- TRAIN TEST...`
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fastdrive_ros.data.world_labels import SceneLabel
from fastdrive_ros.nn.scene_reader import MotionHead, SceneHead
from fastdrive_ros.train.affordance import FRONT_CAMERA, closing_speed
from fastdrive_ros.train.records import KeyframeRecord, sample_chain
from fastdrive_ros.train.token_probe import MinimalProblem, _ridge


@dataclass(frozen=True)
class ProbeSet:
    """One world's keyframes: front tokens, speeds, recorded decisions, scenes.

    previous: the previous keyframe's front tokens (its own where it has none), like tokens.
    target: what the head reads per keyframe (PROBE_TARGETS: the decision, or the closing speed).
    """

    problem: MinimalProblem
    tokens: torch.Tensor
    previous: torch.Tensor
    speed: torch.Tensor
    target: np.ndarray
    scenes: np.ndarray

    @classmethod
    def of(
        cls,
        records: Sequence[KeyframeRecord],
        labels: Mapping[str, SceneLabel],
        tokens: np.ndarray | torch.Tensor,
        previous: Mapping[str, str] | None = None,
        target: str = "decision",
    ) -> ProbeSet:
        """Rows of `tokens` follow `records`.

        previous: {sample token: the keyframe before it} (`sample_chain`); a keyframe whose
        predecessor is not among the records (a scene's first) is its own: no motion.
        """
        if len(tokens) != len(records):
            raise ValueError(f"{len(tokens)} token rows for {len(records)} records")
        if target not in PROBE_TARGETS:
            raise ValueError(f"target must be one of {PROBE_TARGETS}, got {target!r}")
        if target == "decision":
            values = np.array([labels[r.token].decided_acceleration for r in records])
        else:  # 0 where nothing binds: nothing to close on
            values = np.nan_to_num(
                [closing_speed(labels[r.token], r.ego.speed) for r in records], nan=0.0
            )
        if not np.isfinite(values).all():
            raise ValueError("the world did not record the driver's decisions: regenerate it")
        tokens = torch.as_tensor(tokens, dtype=torch.float32)
        row = {r.token: i for i, r in enumerate(records)}
        before = [row.get((previous or {}).get(r.token, ""), i) for i, r in enumerate(records)]
        return cls(
            problem=MinimalProblem.of(records),
            tokens=tokens,
            previous=tokens[before],
            speed=torch.tensor([r.ego.speed for r in records], dtype=torch.float32),
            target=values,
            scenes=np.array([r.scene for r in records]),
        )


PROBE_TARGETS = ("decision", "closing_speed")


def front_tokens(bundle: str | Path, records: Sequence[KeyframeRecord]) -> np.ndarray:
    """[S, n, D] the bundle's tower run on each record's front camera (no pruning)."""
    return _over_images(bundle, records, lambda twin, pixels: (twin(pixels),))[0]


def encoder_output(
    bundle: str | Path, records: Sequence[KeyframeRecord], *, all_cameras: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """([S, N, D] tokens, [S, N] attention each token receives: VisPruner's input).

    The front camera's n tokens, or with `all_cameras` every camera's in the records' camera
    order (N = C n), as the node's encoder gives them.
    """
    tokens, received = _over_images(
        bundle,
        records,
        lambda twin, pixels: twin.forward_with_attention(pixels),
        all_cameras=all_cameras,
    )
    count = len(records)
    return tokens.reshape(count, -1, tokens.shape[-1]), received.reshape(count, -1)


def _over_images(
    bundle: str | Path, records: Sequence[KeyframeRecord], run, *, all_cameras: bool = False
) -> list[np.ndarray]:
    """`run(tower, pixels)`'s outputs over each record's front image (or all its images).

    Batched; the outputs are stacked on the first axis (one row per image).
    """
    from fastdrive_ros.nn.vla import VLA
    from fastdrive_ros.train.images import load_pixels

    vla = VLA.from_pretrained(bundle)
    twin = vla.vision.exportable(None).eval()
    batch = 2 if all_cameras else 16
    out: list[list[np.ndarray]] = []
    with torch.no_grad():
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            paths = [
                path
                for r in chunk
                for path in (
                    r.images if all_cameras else [r.images[r.cameras.index(FRONT_CAMERA)]]
                )
            ]
            pixels = torch.cat([load_pixels([p], vla.config.image_size) for p in paths])
            out.append([part.float().numpy() for part in run(twin, pixels)])
    return [np.concatenate(parts) for parts in zip(*out)]


DecisionHead = SceneHead | MotionHead


def _decide(head: DecisionHead, data: ProbeSet, rows: torch.Tensor) -> torch.Tensor:
    if isinstance(head, MotionHead):
        return head(data.tokens[rows], data.previous[rows], data.speed[rows]).decision
    return head(data.tokens[rows], data.speed[rows])[0].decision


def fit_decision_head(
    data: ProbeSet, rows: torch.Tensor, *, frames: int, epochs: int, seed: int
) -> DecisionHead:
    """A head fitted to the decision of `rows` only (smooth L1, AdamW, batch 64).

    frames=1: SceneHead (its decision output); frames=2: MotionHead (its decision output).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    width = data.tokens.shape[-1]
    head = MotionHead(width) if frames == 2 else SceneHead(width)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    target = torch.as_tensor(data.target, dtype=torch.float32)
    for _ in range(epochs):
        for batch in rows[torch.randperm(len(rows), generator=generator)].split(64):
            loss = F.smooth_l1_loss(_decide(head, data, batch), target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


def _predict(head: DecisionHead, data: ProbeSet, rows: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return _decide(head, data, rows).numpy()


def other_scene_rows(scenes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per keyframe, a random keyframe of another scene (the probes' content effect)."""
    return np.array([rng.choice(np.flatnonzero(scenes != s)) for s in scenes])


def with_read(problem: MinimalProblem, read: np.ndarray) -> np.ndarray:
    """The minimal ego inputs plus what the head read (and it times the speed)."""
    speed = problem.ego[:, 0]
    return np.hstack([problem.ego, np.stack([read, read * speed], 1)])


def decision_probe(
    train: ProbeSet,
    tests: Mapping[str, ProbeSet],
    *,
    frames: int = 1,
    epochs: int = 20,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per held-out world: how well the tokens tell the decision, and what that buys.

    The correlation of predicted and recorded decisions, and L2 Avg (m) of the ridge on the
    minimal ego / plus the decision read from the keyframe's own tokens / from another scene's
    (with frames=2, another scene's keyframe and its predecessor).
    """
    if frames not in (1, 2):
        raise ValueError(f"frames must be 1 or 2, got {frames}")
    names = sorted(set(train.scenes))
    if len(names) < folds:
        raise ValueError(f"need at least {folds} training scenes, got {len(names)}")
    crossed = np.zeros(len(train.target))
    for k, fold in enumerate(np.array_split(np.array(names), folds)):
        held = np.isin(train.scenes, fold)
        fit, rest = (torch.from_numpy(np.flatnonzero(m)) for m in (~held, held))
        head = fit_decision_head(train, fit, frames=frames, epochs=epochs, seed=seed + k)
        crossed[held] = _predict(head, train, rest)
    everything = torch.arange(len(train.target))
    head = fit_decision_head(train, everything, frames=frames, epochs=epochs, seed=seed)
    x_fit, y_fit = with_read(train.problem, crossed), train.problem.target
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for name, test in tests.items():
        predicted = _predict(head, test, torch.arange(len(test.target)))
        partner = torch.from_numpy(other_scene_rows(test.scenes, rng))
        ego = _ridge(train.problem.ego, y_fit, test.problem.ego, 1.0)
        own = _ridge(x_fit, y_fit, with_read(test.problem, predicted), 1.0)
        shuffled = _predict(head, test, partner)
        other = _ridge(x_fit, y_fit, with_read(test.problem, shuffled), 1.0)
        out[name] = {
            "keyframes": float(len(test.target)),
            "train_corr": float(np.corrcoef(crossed, train.target)[0, 1]),
            "corr": float(np.corrcoef(predicted, test.target)[0, 1]),
            "ego": test.problem.l2_avg(ego),
            "own": test.problem.l2_avg(own),
            "shuffled": test.problem.l2_avg(other),
        }
    return out


def read_training_worlds(
    roots: Sequence[str | Path], version: str
) -> tuple[list[KeyframeRecord], dict[str, SceneLabel], dict[str, str]]:
    """Records, labels and sample chains of several worlds as one training set.

    Every synthetic world names its scenes scene-0000...; each record's scene is prefixed with
    its world so that the probe's scene folds keep the worlds' scenes apart.
    """
    from fastdrive_ros.data.world_labels import read_worlds_labels
    from fastdrive_ros.train.records import read_records

    records: list[KeyframeRecord] = []
    chain: dict[str, str] = {}
    for root in roots:
        records += [
            dataclasses.replace(r, scene=f"{root}:{r.scene}")
            for r in read_records(dataroot=root, version=version, progress=False)
        ]
        chain.update(sample_chain(root, version))
    return records, read_worlds_labels(list(roots)), chain


def render_table(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]], what: str = "decision"
) -> str:
    """Markdown: a row per (tower, held-out world); `what`: the target the heads read."""
    lines = [
        f"| tower | world | {what} corr (train, cross-fitted / held-out) | ego | ego + own "
        "tokens | ego + another scene's | content effect |",
        "|---|---|---|---|---|---|---|",
    ]
    for tower, worlds in rows.items():
        for world, f in worlds.items():
            effect = 100 * (f["shuffled"] - f["own"]) / f["own"]
            lines.append(
                f"| {tower} | {world} | {f['train_corr']:.2f} / {f['corr']:.2f} | {f['ego']:.3f} "
                f"| {f['own']:.3f} | {f['shuffled']:.3f} | {effect:+.1f} % |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from fastdrive_ros.data.world_labels import read_scene_labels
    from fastdrive_ros.train.records import read_records

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--towers", nargs="+", required=True, help="bundles whose towers to probe")
    parser.add_argument("train", help="dataset root the heads and the ridge are fitted on")
    parser.add_argument("test", nargs="+", help="held-out dataset roots")
    parser.add_argument(
        "--also-train",
        nargs="+",
        default=[],
        metavar="ROOT",
        help="more training worlds, fitted on together with TRAIN",
    )
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--target",
        choices=PROBE_TARGETS,
        default="decision",
        help="what the head reads: the driver's decision, or the closing speed (motion)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        nargs="+",
        choices=(1, 2),
        default=[1],
        help="1: the keyframe's front tokens; 2: also the previous keyframe's (a row each)",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    worlds = {
        root: (read_records(dataroot=root, version=args.version, progress=False),
               read_scene_labels(root), sample_chain(root, args.version))
        for root in args.test
    }  # fmt: skip
    worlds[args.train] = read_training_worlds([args.train, *args.also_train], args.version)
    rows = {}
    for tower in args.towers:
        sets = {
            root: ProbeSet.of(r, lab, front_tokens(tower, r), chain, args.target)
            for root, (r, lab, chain) in worlds.items()
        }
        train = sets.pop(args.train)
        for frames in args.frames:
            name = tower if args.frames == [1] else f"{tower}, {frames} frame(s)"
            rows[name] = decision_probe(train, sets, frames=frames, epochs=args.epochs)
    print(render_table(rows, args.target.replace("_", " ")))


if __name__ == "__main__":
    main()
