"""Scene probe: how far could reading the cameras take a planner without the ego's motion.

The ceiling behind issue 8's `--ego-inputs minimal` targets. The synthetic world records, per
keyframe, what its driver reacted to and what it decided (data/world_labels.py). A ridge fitted
on one world (the training world) predicts the 3-s residual over the kinematic prior from the
minimal ego inputs (speed, command) plus, step by step, what a camera reader could know:

- `kind+gap`: the binding constraint's kind and distance (what one frame shows),
- `+closing`: also its closing speed (needs motion: two frames, or brake lights),
- `+decision`: also the acceleration the driver decided (everything that binds it),

next to `full ego`: the applied acceleration the full ego status gives instead of any image.
Scored in L2 Avg (m) on held-out worlds. Also how well those labels tell the driver's decision
(held-out correlation of a ridge from the minimal ego inputs and the labels to the decided
acceleration): the ceiling for a camera reader's decision (train/decision_probe.py measures the
tokens' own). Perfect labels and a linear fit: an upper reference for
what the planner could gain from its cameras, not a planning result; a camera reader that beats
`ego` here has found real signal. `python -m fastdrive_ros.train.scene_probe TRAIN TEST...`
(dataset roots of the synthetic world, e.g. build-default's work/data/{train,eval,eval2}).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import numpy as np

from fastdrive_ros.data.world_labels import LEAD_KINDS, SceneLabel
from fastdrive_ros.train.affordance import inverse_gap
from fastdrive_ros.train.records import KeyframeRecord
from fastdrive_ros.train.token_probe import MinimalProblem, _ridge

DECISION_FROM = ("kind+gap", "+closing")  # the levels whose labels are asked for the decision
LEVELS: dict[str, tuple[str, ...]] = {
    "ego": (),
    "kind+gap": ("facts",),
    "+closing": ("facts", "closing"),
    "+decision": ("facts", "closing", "decision"),
    "full ego": ("applied",),
}


def label_features(
    records: Sequence[KeyframeRecord], labels: Mapping[str, SceneLabel]
) -> dict[str, np.ndarray]:
    """Feature groups per keyframe: facts (kind, gap), closing speed, decision, applied accel.

    Interactions with the inverse gap and the speed let a linear fit express "a red light close
    ahead at speed" (IDM's braking grows with speed and closing speed over the gap).
    """
    missing = [r.token for r in records if r.token not in labels]
    if missing:
        raise ValueError(
            f"{len(missing)} keyframes have no scene label (e.g. {missing[0]}): the scene probe "
            "needs the synthetic world's synth/scenes/<scene>.json"
        )
    rows = [labels[r.token] for r in records]
    speed = np.array([r.ego.speed for r in records])
    kind = np.eye(len(LEAD_KINDS))[[LEAD_KINDS.index(label.kind) for label in rows]]
    near = np.array([inverse_gap(label.gap_m) for label in rows])
    closing = (speed - np.array([label.lead_speed for label in rows])) * (near > 0)
    decided = np.array([label.decided_acceleration for label in rows])
    if not np.isfinite(decided).all():
        raise ValueError(
            "the world did not record the driver's decisions (an older dataset): regenerate it"
        )
    applied = np.array([r.ego.acceleration for r in records])
    facts = [kind, kind * near[:, None], kind * (near * speed)[:, None], near[:, None]]
    return {
        "facts": np.hstack([*facts, (near**2)[:, None]]),
        "closing": np.stack(
            [closing, closing * near, closing * near * speed, closing**2 * near], 1
        ),
        "decision": np.stack([decided, decided * speed], 1),
        "applied": np.stack([applied, applied * speed], 1),
    }


def scene_probe(
    train: tuple[Sequence[KeyframeRecord], Mapping[str, SceneLabel]],
    test: tuple[Sequence[KeyframeRecord], Mapping[str, SceneLabel]],
    *,
    alpha: float = 1.0,
) -> dict[str, float]:
    """L2 Avg (m) on `test` of the prior and of a ridge per LEVELS entry fitted on `train`."""
    fit, held = MinimalProblem.of(train[0]), MinimalProblem.of(test[0])
    fit_groups, held_groups = label_features(*train), label_features(*test)
    out = {"prior": held.l2_avg(np.zeros_like(held.target))}
    for name, groups in LEVELS.items():
        x = np.hstack([fit.ego, *(fit_groups[g] for g in groups)])
        x_held = np.hstack([held.ego, *(held_groups[g] for g in groups)])
        out[name] = held.l2_avg(_ridge(x, fit.target, x_held, alpha))
        if name in DECISION_FROM:
            decided = fit_groups["decision"][:, :1]
            read = _ridge(x, decided, x_held, alpha)[:, 0]
            out[f"decision corr {name}"] = float(
                np.corrcoef(read, held_groups["decision"][:, 0])[0, 1]
            )
    return out


def render_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown: one row per held-out world.

    L2 Avg (m) per level, then how well the labels tell the decision (correlation).
    """
    columns = ["prior", *LEVELS, *(f"decision corr {name}" for name in DECISION_FROM)]
    lines = [
        "| world | keyframes | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for world, figures in rows.items():
        cells = " | ".join(f"{figures[c]:.3f}" if c in figures else "-" for c in columns)
        lines.append(f"| {world} | {int(figures['keyframes'])} | {cells} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from fastdrive_ros.data.world_labels import read_scene_labels
    from fastdrive_ros.train.records import read_records

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", help="dataset root the ridge is fitted on (the training world)")
    parser.add_argument("test", nargs="+", help="held-out dataset roots to score on")
    parser.add_argument("--version", default="v1.0-synth")
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args(argv)

    def load(root: str):
        records = read_records(dataroot=root, version=args.version, progress=False)
        return records, read_scene_labels(root)

    train = load(args.train)
    rows = {}
    for root in args.test:
        test = load(root)
        rows[root] = {"keyframes": len(test[0]), **scene_probe(train, test, alpha=args.alpha)}
    print(render_table(rows))


if __name__ == "__main__":
    main()
