"""Which scene lends its tokens to which, for the `shuffled` probe: a fixed pairing by seed.

The content effect (L2 with another scene's tokens minus L2 with the frame's own) is only a test
of content if the other tokens come from a different scene: a neighbouring keyframe of the same
scene shows nearly the same street. So scenes are paired by a derangement (no scene maps to
itself): a seeded permutation read as one cycle, scene p[i] borrows from p[i + 1]. Inside the
pair, the j-th evaluated keyframe of a scene borrows the j-th (cyclically) of its partner's, so
every frame gets a real frame of the same model and image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def scene_pairing(scenes: Sequence[str], seed: int) -> dict[str, str]:
    """Map each scene to the different scene that lends it tokens (fixed by seed and scenes)."""
    names = sorted(set(scenes))  # input order must not change the pairing
    if len(names) < 2:
        raise ValueError(
            f"the shuffled probe needs keyframes from at least two scenes, got {len(names)}: "
            "evaluate more scenes (--max-samples spreads keyframes over every scene of the split)"
        )
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[order[i]]: names[order[(i + 1) % len(names)]] for i in range(len(names))}


def partner_indices(scenes: Sequence[str], seed: int) -> list[int]:
    """Per evaluated keyframe i (scene `scenes[i]`), the position of the keyframe it borrows from.

    That keyframe is in the paired scene, at the same rank (cyclically).
    """
    pairing = scene_pairing(scenes, seed)
    members: dict[str, list[int]] = {}
    rank: list[int] = []
    for i, scene in enumerate(scenes):
        members.setdefault(scene, [])
        rank.append(len(members[scene]))
        members[scene].append(i)
    out = []
    for i, scene in enumerate(scenes):
        lender = members[pairing[scene]]
        out.append(lender[rank[i] % len(lender)])
    return out
