"""The VLA planner: Qwen2.5-VL's language model fed only the kept visual tokens.

Kept tokens keep the M-RoPE positions of the FULL prompt (mrope.py), so with every token kept
the planner is exactly the unpruned Qwen2.5-VL. Layers, norms, rotary tables and lm_head are
transformers' own modules; this file only drives them layer by layer, which lets LLM-stage
selectors (FastV, SparseVLM) drop tokens between layers and lets each layer keep its own KV
cache length. Two read-outs: greedy text decoding parsed as Impromptu's `<PLANNING>` answer, or a
small regression head on the hidden state of the prompt's last token (the compact default).

Two opt-in parts for the compact planner (issue 8; off unless the bundle's config asks, so older
bundles load and plan exactly as before): `ego_encoder` reads the ego status as numbers into one
embedding added to the <plan> token (the prompt then holds only the command as text), and
`waypoint_prior="kinematic"` makes the regression head predict a residual over the kinematic prior
of the status (CTRA with full ego inputs, constant velocity with minimal ones; ego_encoder.py).
A third, `scene_reader`, adds a SceneReader over the kept front-camera tokens whose embedding joins
the <plan> token too and whose facts training supervises (scene_reader.py). A planner with a
scene reader may also carry a DecisionReader (decision_reader.py, `attach_decision_reader`): its
decision, read per cell from the same kept front tokens and compared with the frame 0.5 s before
(a FrameMemory slot, frame_memory.py), replaces the head's own in what the reader projects.
`waypoint_prior="kinematic_decision"` then gives that decision a physical path: the head's residual
is added to the kinematic prior with gain x decision added to its acceleration (decision_prior.py).
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from fastdrive_ros.core_types import (
    DEFAULT_MAX_NEW_TOKENS,
    PLAN_STEPS,
    EgoState,
    PlanFailure,
    PlanOk,
    PlanResult,
)
from fastdrive_ros.nn.decision_prior import DecisionPrior
from fastdrive_ros.nn.decision_reader import DecisionReader, full_status, minimal_ego
from fastdrive_ros.nn.ego_encoder import EgoEncoder, prior_batch
from fastdrive_ros.nn.ego_mlp import EgoPrior
from fastdrive_ros.nn.forward_only import forward_only
from fastdrive_ros.nn.frame_memory import FrameSlot
from fastdrive_ros.nn.llm_stage import (
    LayerCache,
    LLMStageSelector,
    PrefillState,
    cache_keyword,
    mrope_section_of,
    text_attention,
    text_config_of,
    text_model_class,
    with_hidden,
)
from fastdrive_ros.nn.mrope import ImageSegment, TextSegment, mrope_position_ids, next_position
from fastdrive_ros.nn.prompt import PROMPT_STYLES, PromptStyle, build_prompt, check_waypoints
from fastdrive_ros.nn.prompt import parse_planning as _parse_planning
from fastdrive_ros.nn.scene_reader import SceneFacts, SceneReader
from fastdrive_ros.nn.selection import Selection
from fastdrive_ros.nn.tokenizer import PlannerTokenizer

HeadChoice = Literal["auto", "text", "regression"]
WaypointPrior = Literal["none", "kinematic", "ego_mlp", "kinematic_decision"]
WAYPOINT_PRIORS: tuple[str, ...] = ("none", "kinematic", "ego_mlp", "kinematic_decision")


class WaypointHead(nn.Module):
    """Hidden state [B, D] of the query token -> waypoints [B, 6, 2] in metres.

    A 2-layer MLP whose unit output is `scale` metres (train it with an L1/L2 loss on the
    ground-truth future; see VLAPlanner.forward_regression). `zero_init` starts its output at
    exactly 0: a head that predicts a residual over a prior then starts AS the prior, so training
    can only move the plan away from it where that helps (a random residual of a few metres made
    the first residual planners worse than their own prior).
    """

    def __init__(self, *, width: int, scale: float, zero_init: bool = False) -> None:
        super().__init__()
        if width < 1 or not scale > 0:
            raise ValueError(f"need width >= 1 and scale > 0, got {width}, {scale}")
        self.scale = float(scale)
        self.mlp = nn.Sequential(
            nn.Linear(width, width), nn.SiLU(), nn.Linear(width, PLAN_STEPS * 2)
        )
        if zero_init:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.mlp(hidden).view(-1, PLAN_STEPS, 2) * self.scale


@dataclass(frozen=True)
class PlannerOutput:
    """plan_detailed's result: the plan and, with an LLM-stage selector, what it kept.

    Attributes:
        result: PlanOk or PlanFailure.
        selection: the visual tokens left at the last layer (recycled aggregates count under
            the index of the dropped token whose place they take); None without a selector.
        tokens_per_layer: sequence length seen by each LLM layer (prefill), for FLOP counts.
    """

    result: PlanResult
    selection: Selection | None = None
    tokens_per_layer: tuple[int, ...] = ()


@dataclass(frozen=True)
class RegressionOutput:
    """forward_training's result: waypoints [B, 6, 2] and the SceneReader's facts (or None)."""

    waypoints: torch.Tensor
    facts: SceneFacts | None = None


@dataclass(frozen=True)
class _Assembled:
    embeds: torch.Tensor  # [L, D] kept rows, prompt order
    positions: torch.Tensor  # [3, L]
    seq_index: torch.Tensor  # [L]
    visual_index: torch.Tensor  # [L]
    next_pos: int


class VLAPlanner(nn.Module):
    """Qwen2.5-VL's language model + lm_head (+ an optional WaypointHead) over kept tokens.

    Args:
        qwen_config: a Qwen2_5_VLConfig (its text part sizes the model; vision merge size 2).
        tokenizer: the PlannerTokenizer matching the vocabulary.
        prompt_style: "impromptu" (real checkpoints) or "compact" (the embedded default).
        regression_head: add a WaypointHead (needs a prompt ending in PLAN_QUERY: "compact").
        waypoint_scale: metres per unit of the head's output.
        ego_encoder: ego status as numbers through an EgoEncoder into the <plan> token (compact
            prompt only; the prompt text then carries just the command).
        waypoint_prior: "kinematic": the head predicts a residual over the ego status'
            kinematic prior (needs the regression head); "ego_mlp": over the plan of the
            ego-only reference MLP of the sample's ego inputs (nn/ego_mlp.EgoPrior, frozen);
            "none": absolute waypoints.
        scene_reader: a SceneReader over the kept tokens of the first camera (CAM_FRONT) into
            the <plan> token (compact prompt only).
        decision_gains: {ego-input setting: gain} of waypoint_prior "kinematic_decision": the
            kinematic prior with gain x the scene reader's decision added to its acceleration
            (nn/decision_prior.py; needs the scene reader).
    """

    def __init__(
        self,
        *,
        qwen_config,
        tokenizer: PlannerTokenizer,
        prompt_style: PromptStyle,
        regression_head: bool,
        waypoint_scale: float = 10.0,
        ego_encoder: bool = False,
        waypoint_prior: WaypointPrior = "none",
        scene_reader: bool = False,
        decision_gains: dict[str, float] | None = None,
        decision_form: str = "added",
    ) -> None:
        super().__init__()
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
        if (ego_encoder or scene_reader) and prompt_style != "compact":
            raise ValueError("the ego encoder and the scene reader write into the <plan> token")
        if waypoint_prior not in WAYPOINT_PRIORS:
            raise ValueError(
                f"waypoint_prior must be one of {WAYPOINT_PRIORS}, got {waypoint_prior!r}"
            )
        if waypoint_prior != "none" and not regression_head:
            raise ValueError("a waypoint prior needs the regression head")
        if waypoint_prior == "kinematic_decision" and not (scene_reader and decision_gains):
            raise ValueError("the decision prior needs the scene reader and decision_gains")
        if regression_head and prompt_style != "compact":
            raise ValueError("the regression head reads the compact prompt's <plan> token")
        if regression_head and tokenizer.query_id is None:
            raise ValueError("the regression head needs a tokenizer with the <plan> token")
        text_config = copy.deepcopy(text_config_of(qwen_config))
        text_config._attn_implementation = "sdpa"
        if tokenizer.vocab_size > text_config.vocab_size:
            raise ValueError(
                f"tokenizer has {tokenizer.vocab_size} tokens, "
                f"the LLM embeds only {text_config.vocab_size}"
            )
        vision = getattr(qwen_config, "vision_config", None)
        self.merge = int(getattr(vision, "spatial_merge_size", 2))
        self.text_config = text_config
        self.tokenizer = tokenizer
        self.prompt_style: PromptStyle = prompt_style
        self.model = text_model_class()(text_config)
        self.lm_head = nn.Linear(text_config.hidden_size, text_config.vocab_size, bias=False)
        tied = getattr(qwen_config, "tie_word_embeddings", False) or getattr(
            text_config, "tie_word_embeddings", False
        )
        self.tied_embeddings = bool(tied)
        if self.tied_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.waypoint_head = (
            WaypointHead(
                width=text_config.hidden_size,
                scale=waypoint_scale,
                zero_init=waypoint_prior != "none",
            )
            if regression_head
            else None
        )
        self.ego_encoder = EgoEncoder(width=text_config.hidden_size) if ego_encoder else None
        self.scene_reader = SceneReader(width=text_config.hidden_size) if scene_reader else None
        self.decision_reader: DecisionReader | None = None  # its own file: attach_decision_reader
        self.waypoint_prior: WaypointPrior = waypoint_prior
        self.ego_prior = EgoPrior() if waypoint_prior == "ego_mlp" else None
        self.decision_prior = (
            DecisionPrior(decision_gains, decision_form)
            if waypoint_prior == "kinematic_decision"
            else None
        )
        self._cache_kw = cache_keyword(type(self.model.layers[0]).forward)
        self._mrope_section = mrope_section_of(text_config)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.model.layers)

    # -- prompt assembly --------------------------------------------------------------------

    def _assemble(
        self,
        ego: EgoState,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        scene_row: torch.Tensor | None = None,
    ) -> _Assembled:
        """Prompt + kept visual tokens in prompt order, with their full-sequence positions.

        `scene_row` [D]: the SceneReader's embedding for this sample (read_scene), added to the
        <plan> token; required when the planner has a reader.
        """
        device = kept_tokens.device
        grid = [tuple(int(v) for v in row) for row in grid_thw.tolist()]
        images = [ImageSegment(g, merge=self.merge) for g in grid]
        n_total = sum(seg.length for seg in images)
        if kept_tokens.ndim != 2 or kept_tokens.shape[1] != self.hidden_size:
            raise ValueError(
                f"kept_tokens must be [K, {self.hidden_size}], got {tuple(kept_tokens.shape)}"
            )
        Selection(kept_index=kept_index)  # validates: 1-D int64, strictly ascending
        if kept_index.numel() != kept_tokens.shape[0]:
            raise ValueError(
                f"kept_index has {kept_index.numel()} entries, kept_tokens {kept_tokens.shape[0]}"
            )
        if kept_index.numel() and (int(kept_index[0]) < 0 or int(kept_index[-1]) >= n_total):
            raise ValueError(f"kept_index outside 0..{n_total - 1} (grid_thw says N={n_total})")
        prompt = self._prompt(ego, len(images))
        text_ids = [self.tokenizer.encode(t) for t in prompt.texts]
        segments: list[TextSegment | ImageSegment] = []
        seq_visual: list[torch.Tensor] = []
        offset = 0
        for i, ids in enumerate(text_ids):
            segments.append(TextSegment(len(ids)))
            seq_visual.append(torch.full((len(ids),), -1, dtype=torch.long))
            if i < len(images):
                segments.append(images[i])
                seq_visual.append(torch.arange(offset, offset + images[i].length))
                offset += images[i].length
        full_pos = mrope_position_ids(segments, device=device)
        visual_full = torch.cat(seq_visual).to(device)
        keep = visual_full < 0
        keep[torch.nonzero(visual_full >= 0).flatten()[kept_index.to(device)]] = True
        seq_index = torch.nonzero(keep).flatten()
        visual_index = visual_full[seq_index]
        flat_ids = torch.tensor([t for ids in text_ids for t in ids], dtype=torch.long)
        text_embeds = self.model.embed_tokens(flat_ids.to(device))
        embeds = torch.zeros(
            seq_index.numel(), self.hidden_size, dtype=text_embeds.dtype, device=device
        )
        embeds = embeds.index_copy(0, torch.nonzero(visual_index < 0).flatten(), text_embeds)
        embeds = embeds.index_copy(
            0, torch.nonzero(visual_index >= 0).flatten(), kept_tokens.to(text_embeds.dtype)
        )
        plan_row = embeds[-1:]
        if self.ego_encoder is not None:  # the status, as numbers, into the <plan> token
            plan_row = plan_row + self.ego_encoder([ego]).to(embeds.dtype)
        if self.scene_reader is not None:
            if scene_row is None:
                raise ValueError("this planner reads the scene: pass read_scene()'s embedding")
            plan_row = plan_row + scene_row.to(embeds.dtype)
        embeds = torch.cat([embeds[:-1], plan_row])
        return _Assembled(
            embeds=embeds,
            positions=full_pos[:, seq_index],
            seq_index=seq_index,
            visual_index=visual_index,
            next_pos=next_position(full_pos),
        )

    def attach_decision_reader(self, reader: DecisionReader) -> None:
        """Read the decision with `reader` (frozen) instead of the scene head's own."""
        if self.scene_reader is None:
            raise ValueError("a decision reader feeds the scene reader: this planner has none")
        width = reader.cells.width
        if width != self.hidden_size:
            raise ValueError(
                f"the decision reader reads {width}-wide tokens, not {self.hidden_size}"
            )
        device = self.model.embed_tokens.weight.device
        self.decision_reader = reader.to(device).eval().requires_grad_(False)

    def use_decision_prior(self, gains: dict[str, float], form: str = "added") -> None:
        """Residuals over the kinematic prior driven by the read decision (decision_prior.py)."""
        if self.scene_reader is None or self.waypoint_head is None:
            raise ValueError("the decision prior needs the regression head and a scene reader")
        self.decision_prior = DecisionPrior(gains, form)
        self.waypoint_prior = "kinematic_decision"

    def read_scene(
        self,
        kept_tokens: Sequence[torch.Tensor],
        kept_index: Sequence[torch.Tensor],
        grid_thw: torch.Tensor,
        egos: Sequence[EgoState],
        previous: Sequence[torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, SceneFacts] | None:
        """The SceneReader on each sample's kept tokens of the first camera: ([B, D], facts).

        None for a planner without a reader. A sample that kept no front token reads nothing
        (its pooled feature is zero), as a pruner that dropped them all would leave it.
        previous: each sample's decision-reader corridor of 0.5 s before (None: no motion);
        the facts carry this frame's (`corridor`) when the planner has a decision reader.
        """
        if self.scene_reader is None:
            return None
        first = self.first_camera_length(grid_thw)
        front_rows = [
            index.to(tokens.device) < first for tokens, index in zip(kept_tokens, kept_index)
        ]
        front = [tokens[rows] for tokens, rows in zip(kept_tokens, front_rows)]
        speeds = [ego.speed for ego in egos]
        if self.decision_reader is None:
            return self.scene_reader(front, speeds)
        grid, kept = self._front_grid(
            front, [i[r.cpu()] for i, r in zip(kept_index, front_rows)], first
        )
        device = grid.device
        ego = torch.tensor([minimal_ego(e.speed, e.command) for e in egos], device=device)
        before = torch.full((len(front), self.decision_reader.layout.feature_count), float("nan"))
        for b, corridor in enumerate(previous or []):
            if corridor is not None:
                before[b] = corridor.to(before)
        before = before.to(device)
        decision, corridor = self.decision_reader(grid, kept, ego, before)
        pace = None
        if self.decision_reader.pace is not None:
            status = torch.tensor([full_status(e) for e in egos], device=device)
            pace = self.decision_reader.read_pace(ego, status, corridor, before)
        return self.scene_reader(front, speeds, decision=decision, corridor=corridor, pace=pace)

    def previous_corridors(
        self,
        kept_tokens: Sequence[torch.Tensor | None],
        kept_index: Sequence[torch.Tensor | None],
        grid_thw: torch.Tensor,
    ) -> list[torch.Tensor | None]:
        """The decision reader's corridor [F] of each earlier frame's kept tokens (None: none).

        For training: each sample's keyframe 0.5 s before, as the frame memory would hold it.
        """
        if self.decision_reader is None:
            raise ValueError("this planner has no decision reader")
        first = self.first_camera_length(grid_thw)
        rows = [b for b, t in enumerate(kept_tokens) if t is not None]
        out: list[torch.Tensor | None] = [None] * len(kept_tokens)
        if not rows:
            return out
        front = [kept_tokens[b][kept_index[b].to(kept_tokens[b].device) < first] for b in rows]
        index = [kept_index[b][kept_index[b] < first] for b in rows]
        grid, kept = self._front_grid(front, index, first)
        with torch.no_grad():
            corridors = self.decision_reader.corridor(grid, kept)
        for b, corridor in zip(rows, corridors):
            out[b] = corridor
        return out

    def _front_grid(
        self, front: Sequence[torch.Tensor], front_index: Sequence[torch.Tensor], first: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The kept front tokens placed on the decision reader's grid: ([B, n, D], kept [B, n])."""
        reader = self.decision_reader
        assert reader is not None
        cells = reader.grid[0] * reader.grid[1]
        if first != cells:
            raise ValueError(
                f"the decision reader reads a {reader.grid[0]}x{reader.grid[1]} front grid "
                f"({cells} tokens); this frame's front camera has {first}"
            )
        device = self.model.embed_tokens.weight.device
        grid = torch.zeros(len(front), cells, self.hidden_size, device=device)
        kept = torch.zeros(len(front), cells, dtype=torch.bool, device=device)
        for b, (tokens, index) in enumerate(zip(front, front_index)):
            grid[b, index.to(device)] = tokens.to(grid)
            kept[b, index.to(device)] = True
        return grid, kept

    def first_camera_length(self, grid_thw: torch.Tensor) -> int:
        """Visual tokens of the first camera (CAM_FRONT): indices below this are its own."""
        return ImageSegment(tuple(int(v) for v in grid_thw[0].tolist()), merge=self.merge).length

    def _assemble_one(
        self,
        ego: EgoState,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw,
        memory: FrameSlot | None = None,
    ) -> tuple[_Assembled, SceneFacts | None]:
        """_assemble for one frame, reading its scene first if the planner has a reader.

        memory: the frame's slot; its corridor of 0.5 s before is read, this one's kept.
        Returns the assembled prompt and what the reader read (None without one).
        """
        previous = [None if memory is None else memory.previous]
        read = self.read_scene([kept_tokens], [kept_index], grid_thw, [ego], previous)
        corridor = None if read is None else read[1].corridor
        if memory is not None and corridor is not None:
            memory.keep(corridor[0])
        scene_row = None if read is None else read[0][0]
        facts = None if read is None else read[1]
        return self._assemble(ego, kept_tokens, kept_index, grid_thw, scene_row), facts

    def _prompt(self, ego: EgoState, num_cameras: int):
        return build_prompt(
            ego,
            num_cameras=num_cameras,
            style=self.prompt_style,
            ego_text=self.ego_encoder is None,
        )

    def _waypoints(
        self,
        hidden: torch.Tensor,
        egos: Sequence[EgoState],
        facts: SceneFacts | None = None,
    ) -> torch.Tensor:
        """[B, D] <plan> states -> [B, 6, 2] metres (plus the configured prior).

        facts: what the scene reader read (its decision drives the decision prior).
        """
        waypoints = self.waypoint_head(hidden)
        if self.decision_prior is not None:
            if facts is None:
                raise ValueError("the decision prior needs the scene reader's facts")
            prior = self.decision_prior(egos, facts.decision, waypoints.device, facts.pace)
            waypoints = waypoints + prior.to(waypoints.dtype)
        elif self.waypoint_prior == "kinematic":
            waypoints = waypoints + prior_batch(egos, waypoints.device).to(waypoints.dtype)
        elif self.ego_prior is not None:
            waypoints = waypoints + self.ego_prior(egos).to(waypoints)
        return waypoints

    # -- layers -----------------------------------------------------------------------------

    def _rope(self, hidden: torch.Tensor, positions: torch.Tensor):
        return self.model.rotary_emb(hidden, positions)

    def _layer(self, index, hidden, rope, cache, mask):
        kwargs = {self._cache_kw: cache, "use_cache": cache is not None}
        out = self.model.layers[index](
            hidden, attention_mask=mask, position_embeddings=rope, **kwargs
        )
        return out[0] if isinstance(out, tuple) else out

    def text_attention(self, index: int, state: PrefillState) -> torch.Tensor:
        """[H, T, L] eager attention probabilities inside layer `index`, from the text rows."""
        return text_attention(
            self.model.layers[index],
            self._rope(state.hidden, state.positions),
            state,
            self._mrope_section,
        )

    def _prefill(
        self,
        state: PrefillState,
        *,
        cache: LayerCache | None,
        selector: LLMStageSelector | None = None,
        keep: int | None = None,
        mask: torch.Tensor | None = None,
        lengths: list[int] | None = None,
    ) -> PrefillState:
        """Runs every layer (pruning where the selector says) and the final norm.

        `lengths`, when given, receives the sequence length each layer processed.
        """
        points: dict[int, int] = {}
        if selector is not None:
            n_visual = int(state.visual_rows.numel())
            budget = n_visual if keep is None else keep
            if not 1 <= budget <= n_visual:
                raise ValueError(f"keep must be in 1..{n_visual}, got {keep}")
            points = dict(selector.prune_points(self.num_layers, n_visual, budget))
            bad = [j for j in points if not 1 <= j < self.num_layers]
            if bad:
                raise ValueError(
                    f"{selector.name}: pruning layers {bad} outside 1..{self.num_layers - 1}"
                )
        if points and hasattr(selector, "begin"):
            selector.begin(state)  # e.g. SparseVLM's raters come from the input embeddings
        hidden, rope = state.hidden, self._rope(state.hidden, state.positions)
        for index in range(self.num_layers):
            attention = None
            if index + 1 in points:
                attention = self.text_attention(index, with_hidden(state, hidden))
            if lengths is not None:
                lengths.append(int(hidden.shape[1]))
            hidden = self._layer(index, hidden, rope, cache, mask)
            if attention is not None:
                state = selector.prune(with_hidden(state, hidden), attention, points[index + 1])
                hidden, rope = state.hidden, self._rope(state.hidden, state.positions)
        return with_hidden(state, self.model.norm(hidden))

    # -- inference --------------------------------------------------------------------------

    def text_token_count(self, ego: EgoState, num_cameras: int) -> int:
        """Prompt tokens other than the visual ones (for analytic FLOP counts)."""
        spec = self._prompt(ego, num_cameras)
        return sum(len(self.tokenizer.encode(t)) for t in spec.texts)

    @torch.no_grad()
    def prefill_hidden(
        self,
        *,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        ego: EgoState,
        selector: LLMStageSelector | None = None,
        keep: int | None = None,
    ) -> PrefillState:
        """The prompt's final-norm hidden states [1, L, D] (rows left after any LLM pruning).

        `lm_head(state.hidden)` gives the logits; the last row is the <plan> / answer position.
        """
        device = self.model.embed_tokens.weight.device
        parts, _ = self._assemble_one(ego, kept_tokens.to(device), kept_index, grid_thw)
        state = PrefillState(
            hidden=parts.embeds[None],
            positions=parts.positions[:, None],
            seq_index=parts.seq_index,
            visual_index=parts.visual_index,
        )
        return self._prefill(state, cache=None, selector=selector, keep=keep)

    @torch.no_grad()
    def plan(
        self,
        *,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        ego: EgoState,
        selector: LLMStageSelector | None = None,
        keep: int | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        head: HeadChoice = "auto",
        memory: FrameSlot | None = None,
    ) -> PlanResult:
        """Plan one frame from the kept visual tokens [K, D] and their ascending indices [K].

        Model-output problems (garbage text, non-finite values) come back as PlanFailure;
        timings_ms holds "prefill" and "decode" in milliseconds.
        """
        return self.plan_detailed(
            kept_tokens=kept_tokens,
            kept_index=kept_index,
            grid_thw=grid_thw,
            ego=ego,
            selector=selector,
            keep=keep,
            max_new_tokens=max_new_tokens,
            head=head,
            memory=memory,
        ).result

    @torch.no_grad()
    def plan_detailed(
        self,
        *,
        kept_tokens: torch.Tensor,
        kept_index: torch.Tensor,
        grid_thw: torch.Tensor,
        ego: EgoState,
        selector: LLMStageSelector | None = None,
        keep: int | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        head: HeadChoice = "auto",
        memory: FrameSlot | None = None,
    ) -> PlannerOutput:
        """plan() plus, for an LLM-stage selector, the visual tokens it left to the last layer.

        memory: this frame's FrameMemory slot (a planner with a decision reader reads the
        corridor of 0.5 s before from it and keeps this frame's); None: no motion.
        """
        read_out = self._resolve_head(head)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if selector is not None and getattr(selector, "stage", None) != "llm":
            raise ValueError(f"selector {getattr(selector, 'name', selector)!r} is not LLM-stage")
        device = self.model.embed_tokens.weight.device
        start = tick(device)
        parts, facts = self._assemble_one(
            ego, kept_tokens.to(device), kept_index, grid_thw, memory
        )
        state = PrefillState(
            hidden=parts.embeds[None],
            positions=parts.positions[:, None],
            seq_index=parts.seq_index,
            visual_index=parts.visual_index,
        )
        cache = LayerCache() if read_out == "text" else None
        lengths: list[int] = []
        state = self._prefill(state, cache=cache, selector=selector, keep=keep, lengths=lengths)
        if cache is not None:
            self._check_cache_filled(cache)
        selection = None
        if selector is not None:
            kept = state.visual_index[state.visual_rows]
            selection = Selection(kept_index=torch.sort(kept).values.cpu())
        done = functools.partial(
            PlannerOutput, selection=selection, tokens_per_layer=tuple(lengths)
        )
        last = state.hidden[0, -1]
        if read_out == "regression":
            waypoints = self._waypoints(last[None].float(), [ego], facts)[0]
            timings = {"prefill": tock(device, start), "decode": 0.0}
            if not bool(torch.isfinite(last).all()):
                return done(_failure("non_finite", "hidden state", timings))
            result = check_waypoints(forward_only(waypoints.cpu().numpy()))
            return done(_timed(result, timings, 0))
        logits = self.lm_head(last)
        prefill_ms = tock(device, start)
        if not bool(torch.isfinite(logits).all()):
            timings = {"prefill": prefill_ms, "decode": 0.0}
            return done(_failure("non_finite", "prefill logits", timings))
        start = tick(device)
        ids, finite = self._greedy(logits, cache, parts.next_pos, max_new_tokens)
        timings = {"prefill": prefill_ms, "decode": tock(device, start)}
        text = self.tokenizer.decode(ids)
        if not finite:
            return done(_failure("non_finite", "decode logits", timings, text))
        return done(_timed(_parse_planning(text), timings, len(ids)))

    def _check_cache_filled(self, cache: LayerCache) -> None:
        """Decoding without context produces fluent nonsense, so an empty cache is an error."""
        missing = [i for i in range(self.num_layers) if cache.get_seq_length(i) == 0]
        if missing:
            import transformers

            raise RuntimeError(
                f"the KV cache of layers {missing} is empty after prefill: the decoder layers "
                f"ignored the {self._cache_kw!r} keyword (transformers "
                f"{transformers.__version__}); install the tested versions (`make venv`)"
            )

    def _resolve_head(self, head: HeadChoice) -> Literal["text", "regression"]:
        if head == "auto":
            return "regression" if self.waypoint_head is not None else "text"
        if head == "regression" and self.waypoint_head is None:
            raise ValueError("this planner has no regression head: use head='text' or 'auto'")
        if head not in ("text", "regression"):
            raise ValueError(f"head must be 'auto', 'text' or 'regression', got {head!r}")
        return head

    def _greedy(
        self, logits: torch.Tensor, cache: LayerCache, start_pos: int, max_new_tokens: int
    ) -> tuple[list[int], bool]:
        """Greedy decoding with the KV cache; stops at EOS, `</PLANNING>` or the budget."""
        ids: list[int] = []
        eos = set(self.tokenizer.eos_ids)
        device = logits.device
        for step in range(max_new_tokens):
            token = int(logits.argmax())
            if token in eos:
                break
            ids.append(token)
            if step == max_new_tokens - 1 or self.tokenizer.decode(ids).endswith("</PLANNING>"):
                break
            hidden = self.model.embed_tokens(torch.tensor([[token]], device=device))
            positions = torch.full((3, 1, 1), start_pos + step, dtype=torch.long, device=device)
            rope = self._rope(hidden, positions)
            for index in range(self.num_layers):
                hidden = self._layer(index, hidden, rope, cache, None)
            logits = self.lm_head(self.model.norm(hidden)[0, -1])
            if not bool(torch.isfinite(logits).all()):
                return ids, False
        return ids, True

    # -- training ---------------------------------------------------------------------------

    def forward_regression(
        self,
        *,
        visual_tokens: Sequence[torch.Tensor],
        kept_index: Sequence[torch.Tensor],
        grid_thw: torch.Tensor,
        egos: Sequence[EgoState],
    ) -> torch.Tensor:
        """Differentiable batched waypoints [B, 6, 2] (metres): forward_training's waypoints."""
        return self.forward_training(
            visual_tokens=visual_tokens, kept_index=kept_index, grid_thw=grid_thw, egos=egos
        ).waypoints

    def forward_training(
        self,
        *,
        visual_tokens: Sequence[torch.Tensor],
        kept_index: Sequence[torch.Tensor],
        grid_thw: torch.Tensor,
        egos: Sequence[EgoState],
        previous_tokens: Sequence[torch.Tensor | None] | None = None,
        previous_index: Sequence[torch.Tensor | None] | None = None,
    ) -> RegressionOutput:
        """Differentiable batched waypoints [B, 6, 2] (metres) and the reader's facts.

        Args:
            visual_tokens: B tensors [K_b, D] (kept tokens, ascending original order).
            kept_index: B int64 tensors [K_b], strictly ascending indices into the N tokens.
            grid_thw: [C, 3] the cameras' grids (the same rig for the whole batch).
            egos: B EgoState.
            previous_tokens: each sample's keyframe 0.5 s before, its kept tokens (None: none),
                for a planner with a decision reader.
            previous_index: their indices into the N tokens.
        Sequences are right-padded to the longest; a padding-aware causal mask keeps each
        sample's result equal to plan()'s (up to float rounding). Loss (e.g. L1 to the
        ground-truth future, plus the facts' terms) is the caller's.
        """
        if self.waypoint_head is None:
            raise ValueError("this planner has no regression head")
        if not len(visual_tokens) == len(kept_index) == len(egos) >= 1:
            raise ValueError("visual_tokens, kept_index and egos must have the same length >= 1")
        previous = None
        if self.decision_reader is not None and previous_tokens is not None:
            previous = self.previous_corridors(previous_tokens, previous_index or [], grid_thw)
        read = self.read_scene(visual_tokens, kept_index, grid_thw, egos, previous)
        rows = [None] * len(egos) if read is None else list(read[0])
        parts = [
            self._assemble(ego, tokens, index, grid_thw, row)
            for tokens, index, ego, row in zip(visual_tokens, kept_index, egos, rows)
        ]
        lengths = torch.tensor([p.embeds.shape[0] for p in parts])
        length, batch = int(lengths.max()), len(parts)
        embeds = nn.utils.rnn.pad_sequence([p.embeds for p in parts], batch_first=True)
        device, dtype = embeds.device, embeds.dtype
        positions = torch.zeros(3, batch, length, dtype=torch.long, device=device)
        for b, p in enumerate(parts):
            positions[:, b, : p.embeds.shape[0]] = p.positions
        valid = torch.arange(length, device=device)[None] < lengths.to(device)[:, None]
        causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        allowed = causal[None] & valid[:, None, :]
        allowed |= torch.eye(length, dtype=torch.bool, device=device)[None]  # padded rows
        mask = torch.zeros(batch, 1, length, length, dtype=dtype, device=device)
        mask = mask.masked_fill(~allowed[:, None], torch.finfo(dtype).min)
        hidden, rope = embeds, self._rope(embeds, positions)
        for index in range(self.num_layers):
            hidden = self._layer(index, hidden, rope, None, mask)
        hidden = self.model.norm(hidden)
        last = lengths.to(device) - 1
        facts = None if read is None else read[1]
        waypoints = self._waypoints(hidden[torch.arange(batch, device=device), last], egos, facts)
        return RegressionOutput(waypoints=waypoints, facts=facts)


def tick(device: torch.device) -> float:
    """perf_counter() once the device's queued work is done (stage timing on CUDA too)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def tock(device: torch.device, start: float) -> float:
    """Milliseconds since `start` (a tick), the device's queued work included."""
    return (tick(device) - start) * 1000.0


def _timed(result: PlanResult, timings: dict[str, float], generated: int) -> PlanResult:
    if isinstance(result, PlanOk):
        return PlanOk(
            waypoints=result.waypoints,
            text=result.text,
            generated_tokens=generated,
            timings_ms=timings,
        )
    return PlanFailure(
        reason=result.reason, detail=result.detail, text=result.text, timings_ms=timings
    )


def _failure(reason, where: str, timings: dict[str, float], text: str | None = None):
    return PlanFailure(
        reason=reason,
        detail=f"non-finite values in the {where} (check the weights and the input tokens)",
        text=text,
        timings_ms=timings,
    )
