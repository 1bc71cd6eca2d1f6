"""What binds the ego, read from the kept front-camera tokens into the planner's <plan> token.

A planner trained end to end on the trajectory alone learned to ignore the cameras: giving it
another scene's tokens changed nothing (issue 8), although the stage-A2 tower's front tokens do
carry the binding constraint and part of the driver's decision (train/decision_probe.py). The
4-layer LLM never found that signal among 1080 tokens with the ego status beside it.

The SceneReader gives it a short path: one learned-query attention pooling over the KEPT tokens
of the front camera (so pruning still decides what it can see) predicts the constraint's kind
(LEAD_KINDS), its inverse gap and, given the speed, the acceleration the driver decided; those
facts and the pooled feature go through one zero-initialised projection into an embedding added
to the <plan> token, like the ego status. Training supervises the facts where the world labelled
them (train/planner.py), so the reader must learn what the scene means, not only what helps the
loss. The projection starts at zero, so a planner gains a reader without changing its plans.

SceneHead is the same pooling and facts as stage A2's training head (train/affordance.py), so
both say the same things in the same units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from fastdrive_ros.core_types import LEAD_KINDS

SPEED_SCALE = 10.0  # m/s: the decision reads speed / SPEED_SCALE
DECISION_SCALE = 3.0  # m/s^2: the projection reads decision / DECISION_SCALE


@dataclass(frozen=True)
class SceneFacts:
    """A batch of predictions about what binds the ego.

    kind_logits [B, len(LEAD_KINDS)]; inverse_gap [B] in [0, 1] (min(1, 5 m / gap), 0 where
    nothing binds); decision [B]: the acceleration the driver decided, m/s^2; corridor [B, F]:
    the decision reader's corridor summary (nn/decision_reader.py), None without one; pace [B]:
    its full-status pace (m/s^2, NaN for samples with the minimal status), None without one.
    """

    kind_logits: torch.Tensor
    inverse_gap: torch.Tensor
    decision: torch.Tensor
    corridor: torch.Tensor | None = None
    pace: torch.Tensor | None = None


class SceneHead(nn.Module):
    """Tokens [B, n, D] (+ mask [B, n], speed [B]) -> (SceneFacts, pooled feature [B, D]).

    One learned query scores every token; a sample whose mask keeps no token pools to zeros.
    The decision also sees the speed (the same scene means braking at 15 m/s, creeping at 2);
    the kind and the gap are facts of the image alone.
    """

    def __init__(self, width: int, hidden: int = 128) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(width))
        self.key = nn.Linear(width, width)
        self.facts = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, len(LEAD_KINDS) + 1)
        )
        self.decision = nn.Sequential(
            nn.Linear(width + 2, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )

    def forward(
        self, tokens: torch.Tensor, speed: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[SceneFacts, torch.Tensor]:
        pooled = query_pool(tokens, self.query, self.key, mask)
        facts = self.facts(pooled)
        v = (speed.to(pooled.dtype) / SPEED_SCALE).unsqueeze(-1)
        decision = self.decision(torch.cat([pooled, v, v * v], dim=-1))[:, 0]
        return SceneFacts(facts[:, :-1], torch.sigmoid(facts[:, -1]), decision), pooled


def query_pool(
    tokens: torch.Tensor, query: torch.Tensor, key: nn.Linear, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """[B, n, D] -> [B, D]: one learned query's softmax attention over the (unmasked) tokens.

    A row whose mask keeps no token pools to zeros.
    """
    scores = key(tokens) @ query / math.sqrt(tokens.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(scores.softmax(dim=-1))  # all-masked rows: NaN -> 0
    return (weights.unsqueeze(-1) * tokens).sum(dim=1)


@dataclass(frozen=True)
class MotionFacts:
    """What two frames show and one cannot.

    closing_speed [B] m/s: how fast the gap to the binding constraint shrinks (the ego's speed
    minus the constraint's along the lane); decision [B]: the driver's decided acceleration, m/s^2.
    """

    closing_speed: torch.Tensor
    decision: torch.Tensor


class MotionHead(nn.Module):
    """Tokens of a keyframe and of the one before it (0.5 s earlier) + speed -> MotionFacts.

    One frame shows where the constraint is, not how fast the ego closes on it, which the scene
    probe values at about as much as everything one frame shows. One learned-query pooling (as
    SceneHead's) runs on both frames; the facts read the pooled feature, its change between the
    frames and the speed, so the tower has to make that change say how the scene moved.
    """

    def __init__(self, width: int, hidden: int = 128) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(width))
        self.key = nn.Linear(width, width)
        self.facts = nn.Sequential(
            nn.Linear(2 * width + 2, hidden), nn.GELU(), nn.Linear(hidden, 2)
        )

    def forward(
        self, tokens: torch.Tensor, previous: torch.Tensor, speed: torch.Tensor
    ) -> MotionFacts:
        """tokens, previous: [B, n, D]; speed [B] m/s."""
        now = query_pool(tokens, self.query, self.key)
        before = query_pool(previous, self.query, self.key)
        v = (speed.to(now.dtype) / SPEED_SCALE).unsqueeze(-1)
        out = self.facts(torch.cat([now, now - before, v, v * v], dim=-1))
        return MotionFacts(closing_speed=out[:, 0], decision=out[:, 1])


class SceneReader(nn.Module):
    """Kept front-camera tokens + speed -> (<plan> embedding [B, D], SceneFacts)."""

    def __init__(self, *, width: int, hidden: int = 128) -> None:
        super().__init__()
        self.head = SceneHead(width, hidden)
        self.project = nn.Linear(width + len(LEAD_KINDS) + 2, width)
        nn.init.zeros_(self.project.weight)  # starts silent: the planner's plans are unchanged
        nn.init.zeros_(self.project.bias)

    def forward(
        self,
        tokens: Sequence[torch.Tensor],
        speeds: Sequence[float],
        *,
        decision: torch.Tensor | None = None,
        corridor: torch.Tensor | None = None,
        pace: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, SceneFacts]:
        """tokens: B tensors [n_b, D] (n_b may be 0); speeds: B ego speeds in m/s.

        decision [B] (m/s^2), corridor [B, F]: a decision reader's, which then replaces the
        head's own decision in the facts and in what the projection reads; pace [B]: its pace,
        carried in the facts for the decision prior (the projection does not read it).
        """
        weight = self.project.weight
        width = weight.shape[1] - len(LEAD_KINDS) - 2
        if not tokens or any(t.ndim != 2 or t.shape[1] != width for t in tokens):
            raise ValueError(f"the scene reader needs B >= 1 tensors [n, {width}]")
        longest = max(1, max(t.shape[0] for t in tokens))
        padded = torch.zeros(len(tokens), longest, width, dtype=weight.dtype, device=weight.device)
        mask = torch.zeros(len(tokens), longest, dtype=torch.bool, device=weight.device)
        for b, t in enumerate(tokens):
            padded[b, : t.shape[0]] = t.to(weight)
            mask[b, : t.shape[0]] = True
        speed = torch.tensor([float(s) for s in speeds], dtype=weight.dtype, device=weight.device)
        facts, pooled = self.head(padded, speed, mask)
        if decision is not None:
            facts = replace(facts, decision=decision.to(pooled), corridor=corridor, pace=pace)
        summary = torch.cat(
            [
                pooled,
                facts.kind_logits.softmax(dim=-1),
                facts.inverse_gap[:, None],
                facts.decision[:, None] / DECISION_SCALE,
            ],
            dim=-1,
        )
        return self.project(summary), facts
