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
`python -m fastdrive_ros.train.decision_probe --towers A B -- TRAIN TEST...`
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fastdrive_ros.data.world_labels import SceneLabel
from fastdrive_ros.nn.scene_reader import SceneHead
from fastdrive_ros.train.affordance import FRONT_CAMERA
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.token_probe import MinimalProblem, _ridge


@dataclass(frozen=True)
class ProbeSet:
    """One world's keyframes: front tokens [S, n, D], speeds, recorded decisions, scenes."""

    problem: MinimalProblem
    tokens: torch.Tensor
    speed: torch.Tensor
    decided: np.ndarray
    scenes: np.ndarray

    @classmethod
    def of(
        cls,
        records: Sequence[KeyframeRecord],
        labels: Mapping[str, SceneLabel],
        tokens: np.ndarray | torch.Tensor,
    ) -> ProbeSet:
        if len(tokens) != len(records):
            raise ValueError(f"{len(tokens)} token rows for {len(records)} records")
        decided = np.array([labels[r.token].decided_acceleration for r in records])
        if not np.isfinite(decided).all():
            raise ValueError("the world did not record the driver's decisions: regenerate it")
        return cls(
            problem=MinimalProblem.of(records),
            tokens=torch.as_tensor(tokens, dtype=torch.float32),
            speed=torch.tensor([r.ego.speed for r in records], dtype=torch.float32),
            decided=decided,
            scenes=np.array([r.scene for r in records]),
        )


def front_tokens(bundle: str | Path, records: Sequence[KeyframeRecord]) -> np.ndarray:
    """[S, n, D] the bundle's tower run on each record's front camera (no pruning)."""
    from fastdrive_ros.nn.vla import VLA
    from fastdrive_ros.train.images import load_pixels

    vla = VLA.from_pretrained(bundle)
    twin = vla.vision.exportable(None).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(records), 16):
            chunk = records[start : start + 16]
            paths = [r.images[r.cameras.index(FRONT_CAMERA)] for r in chunk]
            pixels = torch.cat([load_pixels([p], vla.config.image_size) for p in paths])
            out.append(twin(pixels).float().numpy())
    return np.concatenate(out)


def fit_decision_head(
    tokens: torch.Tensor, speed: torch.Tensor, decided: np.ndarray, *, epochs: int, seed: int
) -> SceneHead:
    """SceneHead trained on its decision output only (smooth L1, AdamW, batch 64)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = SceneHead(tokens.shape[-1])
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    target = torch.as_tensor(decided, dtype=torch.float32)
    for _ in range(epochs):
        for batch in torch.randperm(len(tokens), generator=generator).split(64):
            decision = head(tokens[batch], speed[batch])[0].decision
            loss = F.smooth_l1_loss(decision, target[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


def _predict(head: SceneHead, tokens: torch.Tensor, speed: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return head(tokens, speed)[0].decision.numpy()


def _with_decision(problem: MinimalProblem, decision: np.ndarray) -> np.ndarray:
    speed = problem.ego[:, 0]
    return np.hstack([problem.ego, np.stack([decision, decision * speed], 1)])


def decision_probe(
    train: ProbeSet,
    tests: Mapping[str, ProbeSet],
    *,
    epochs: int = 20,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per held-out world: how well the tokens tell the decision, and what that buys.

    The correlation of predicted and recorded decisions, and L2 Avg (m) of the ridge on the
    minimal ego / plus the decision read from the keyframe's own tokens / from another scene's.
    """
    names = sorted(set(train.scenes))
    if len(names) < folds:
        raise ValueError(f"need at least {folds} training scenes, got {len(names)}")
    crossed = np.zeros(len(train.decided))
    for k, fold in enumerate(np.array_split(np.array(names), folds)):
        held = np.isin(train.scenes, fold)
        fit = torch.from_numpy(np.flatnonzero(~held))
        head = fit_decision_head(
            train.tokens[fit], train.speed[fit], train.decided[~held], epochs=epochs, seed=seed + k
        )
        crossed[held] = _predict(head, train.tokens[held], train.speed[held])
    head = fit_decision_head(train.tokens, train.speed, train.decided, epochs=epochs, seed=seed)
    x_fit, y_fit = _with_decision(train.problem, crossed), train.problem.target
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for name, test in tests.items():
        predicted = _predict(head, test.tokens, test.speed)
        partner = np.array([rng.choice(np.flatnonzero(test.scenes != s)) for s in test.scenes])
        ego = _ridge(train.problem.ego, y_fit, test.problem.ego, 1.0)
        own = _ridge(x_fit, y_fit, _with_decision(test.problem, predicted), 1.0)
        other = _ridge(x_fit, y_fit, _with_decision(test.problem, predicted[partner]), 1.0)
        out[name] = {
            "keyframes": float(len(test.decided)),
            "train_corr": float(np.corrcoef(crossed, train.decided)[0, 1]),
            "corr": float(np.corrcoef(predicted, test.decided)[0, 1]),
            "ego": test.problem.l2_avg(ego),
            "own": test.problem.l2_avg(own),
            "shuffled": test.problem.l2_avg(other),
        }
    return out


def render_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Markdown: a row per (tower, held-out world)."""
    lines = [
        "| tower | world | decision corr (train, cross-fitted / held-out) | ego | ego + own "
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
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    worlds = {
        root: (read_records(dataroot=root, version=args.version, progress=False),
               read_scene_labels(root))
        for root in (args.train, *args.test)
    }  # fmt: skip
    rows = {}
    for tower in args.towers:
        sets = {
            root: ProbeSet.of(r, lab, front_tokens(tower, r)) for root, (r, lab) in worlds.items()
        }
        train = sets.pop(args.train)
        rows[tower] = decision_probe(train, sets, epochs=args.epochs)
    print(render_table(rows))


if __name__ == "__main__":
    main()
