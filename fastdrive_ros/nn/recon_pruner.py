"""FastDriveVLA's ReconPruner: a one-layer scorer that keeps the foreground visual tokens.

One Qwen2.5 decoder layer (transformers' Qwen2DecoderLayer and rotary embedding) runs with
bidirectional attention over [Q; V], a learnable query Q followed by one camera's merged tokens V;
the score of each token is Linear_D->1(V* (.) Q*), the Hadamard product of its output with the
query's output; rotary positions are 1-D (0 for the query, 1..n for the tokens in raster order).
Inference keeps the top K = floor(N (1 - p)) tokens in their original order and positions.
Trained with AFBR (afbr.py); about 0.077B parameters at D = 2048 (Qwen2.5-VL-3B).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RotaryEmbedding

from fastdrive_ros.nn.integrity import verify_file, write_manifest
from fastdrive_ros.nn.selection import Selection, VisualTokens, check_keep, split_keep

WEIGHTS_FILE = "reconpruner.safetensors"
CONFIG_FILE = "reconpruner.json"
FORMAT = "fastdrive_ros.reconpruner"
FORMAT_VERSION = 1

Budget = Literal["global", "per_camera"]


@dataclass(frozen=True)
class ReconPrunerConfig:
    """Shape of the scorer's decoder layer; hidden_size must equal the encoder's token width D.

    budget: how an integer `keep` is spent in `select`: "global" ranks all cameras' tokens together
    (the paper), "per_camera" splits K over cameras in proportion to their token counts.
    """

    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    budget: Budget = "global"

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_attention_heads", "num_key_value_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.intermediate_size < 1:
            raise ValueError(f"intermediate_size must be >= 1, got {self.intermediate_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("head dimension must be even (rotary embedding)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.rms_norm_eps <= 0 or self.rope_theta <= 0:
            raise ValueError("rms_norm_eps and rope_theta must be positive")
        if self.budget not in ("global", "per_camera"):
            raise ValueError(f"budget must be 'global' or 'per_camera', got {self.budget!r}")

    @classmethod
    def for_width(cls, hidden_size: int) -> ReconPrunerConfig:
        """Qwen2.5-3B's decoder-layer shape scaled to width D.

        Head dim 128 (smaller when D needs it), 8 query heads per KV head, MLP 5.375 D; at
        D = 2048 this is exactly a Qwen2.5-3B decoder layer (~0.077B parameters).
        """
        if hidden_size < 2:
            raise ValueError(f"hidden_size must be >= 2, got {hidden_size}")
        head_dim = next(
            (d for d in (128, 64, 32, 16, 8) if hidden_size % d == 0 and hidden_size >= d),
            hidden_size,
        )
        if head_dim % 2:
            raise ValueError(f"hidden_size {hidden_size} needs an even head dimension")
        heads = hidden_size // head_dim
        kv_heads = heads // 8 if heads % 8 == 0 else 1
        intermediate = max(64, round(hidden_size * 5.375 / 64) * 64)
        return cls(
            hidden_size=hidden_size,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            intermediate_size=intermediate,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconPrunerConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ReconPrunerConfig fields {unknown}")
        return cls(**data)

    def qwen2_config(self) -> Qwen2Config:
        """The transformers config of the one decoder layer (bidirectional by use, see forward)."""
        config = Qwen2Config(
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=1,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,  # transformers 4.x and 5.x both take it
            vocab_size=1,
            max_position_embeddings=1 << 16,
        )
        config._attn_implementation = "sdpa"
        return config


class ReconPruner(torch.nn.Module):
    """Scores merged visual tokens; keeps the top K in original order (an EncoderStageSelector).

    Needs the encoder output only (tokens of each camera); attention runs within a camera, as the
    paper scores one image, and cameras are batched.
    """

    name = "reconpruner"
    stage = "encoder"

    def __init__(self, *, config: ReconPrunerConfig) -> None:
        super().__init__()
        if not isinstance(config, ReconPrunerConfig):
            raise TypeError(f"config must be a ReconPrunerConfig, got {type(config).__name__}")
        self.config = config
        qwen = config.qwen2_config()
        self.query = torch.nn.Parameter(torch.randn(1, config.hidden_size) * 0.02)
        self.layer = Qwen2DecoderLayer(qwen, layer_idx=0)
        self.layer.self_attn.is_causal = False  # ReconPruner attends both ways over [Q; V]
        self.rotary = Qwen2RotaryEmbedding(qwen)
        self.scorer = torch.nn.Linear(config.hidden_size, 1)
        self._init_layer(qwen.initializer_range)

    def _init_layer(self, std: float) -> None:
        for module in self.layer.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, n, D] tokens (one camera per row) -> [B, n] scores (> 0 means foreground)."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"tokens must be [B, n, {self.config.hidden_size}], got {tuple(tokens.shape)}"
            )
        batch, count, _ = tokens.shape
        query = self.query.to(tokens.dtype).unsqueeze(0).expand(batch, 1, -1)
        x = torch.cat([query, tokens], dim=1)  # [B, 1 + n, D]
        positions = torch.arange(count + 1, device=tokens.device).unsqueeze(0).expand(batch, -1)
        position_embeddings = self.rotary(x, positions)
        h = self.layer(
            x, attention_mask=None, position_embeddings=position_embeddings, is_causal=False
        )
        h = h[0] if isinstance(h, tuple) else h  # older transformers return a tuple
        q_star, v_star = h[:, :1], h[:, 1:]
        return self.scorer(v_star * q_star).squeeze(-1)

    def scores(self, visual: VisualTokens) -> torch.Tensor:
        """[N] scores over all cameras (cameras with equal token counts share one batch)."""
        self._check_width(visual.tokens.shape[-1])
        counts = visual.tokens_per_camera
        parts = list(torch.split(visual.tokens, counts, dim=0))
        out: list[torch.Tensor | None] = [None] * len(parts)
        for size in sorted(set(counts)):
            members = [i for i, c in enumerate(counts) if c == size]
            if size == 0:
                for i in members:
                    out[i] = visual.tokens.new_zeros(0)
                continue
            batch_scores = self.forward(torch.stack([parts[i] for i in members]))
            for row, i in enumerate(members):
                out[i] = batch_scores[row]
        return torch.cat([o for o in out if o is not None])

    @torch.no_grad()
    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        """Keep the top-K tokens by score, in ascending (original) order.

        `keep` is a global K (spent as config.budget says) or one K per camera.
        """
        scores = self.scores(visual)
        counts = visual.tokens_per_camera
        keep = check_keep(counts, keep)
        if isinstance(keep, int) and self.config.budget == "global":
            return Selection(kept_index=topk_original_order(scores, keep), scores=scores)
        budgets = split_keep(counts, keep) if isinstance(keep, int) else keep
        return Selection(kept_index=topk_per_camera(scores, counts, budgets), scores=scores)

    def save(self, folder: str | Path) -> None:
        """Write reconpruner.safetensors (weights) and reconpruner.json (config) into folder."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
        write_manifest(folder, [WEIGHTS_FILE])  # checked at load: see nn/integrity.py
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "config": self.config.to_dict()}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path, *, expected_width: int | None = None) -> ReconPruner:
        """Read a pruner written by `save`; expected_width is the encoder's D, checked first."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"no {path.name} in {folder}: not a saved ReconPruner "
                    f"(expected {CONFIG_FILE} + {WEIGHTS_FILE})"
                )
        try:
            meta = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{config_path} is not readable JSON: {exc}") from exc
        if meta.get("format") != FORMAT or int(meta.get("version", -1)) > FORMAT_VERSION:
            raise ValueError(
                f"{config_path} is not a ReconPruner config this version can read "
                f"(format {meta.get('format')!r}, version {meta.get('version')!r})"
            )
        config = ReconPrunerConfig.from_dict(meta["config"])
        if expected_width is not None and config.hidden_size != expected_width:
            raise ValueError(
                f"ReconPruner in {config_path} was trained for encoder width "
                f"{config.hidden_size}, this encoder outputs {expected_width}: retrain or pick "
                "the matching pruner"
            )
        pruner = cls(config=config)
        verify_file(
            weights_path,
            remedy="restore it (`git checkout` for the shipped models/default) or retrain the "
            "pruner (`fastdrive train-pruner`)",
        )
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError) as exc:
            raise ValueError(
                f"{weights_path} is corrupt or truncated ({exc}): restore or retrain the pruner"
            ) from exc
        missing, unexpected = pruner.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{weights_path} does not match its config: missing {missing[:4]}, "
                f"unexpected {unexpected[:4]}"
            )
        return pruner.eval()

    def _check_width(self, width: int) -> None:
        if width != self.config.hidden_size:
            raise ValueError(
                f"ReconPruner was built for encoder width {self.config.hidden_size}, "
                f"these tokens are {width} wide: retrain or pick the matching pruner"
            )


def topk_original_order(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """[N] scores -> [K] int64 indices of the K best, ascending (their original order).

    Export-friendly: one sorted TopK, then the indices sorted by a second (float) TopK, because
    TensorRT's TopK takes float input only (exact for N < 2**24).
    """
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D [N], got {tuple(scores.shape)}")
    if not 1 <= keep <= scores.shape[0]:
        raise ValueError(f"keep must be in 1..{scores.shape[0]}, got {keep}")
    best = torch.topk(scores.to(torch.float32), keep, largest=True, sorted=True).indices
    order = torch.topk(best.to(torch.float32), keep, largest=False, sorted=True).indices
    return best.index_select(0, order)


def topk_per_camera(
    scores: torch.Tensor, tokens_per_camera: Sequence[int], budgets: Sequence[int]
) -> torch.Tensor:
    """Top budgets[c] of each camera's scores -> [K] ascending global indices."""
    budgets = check_keep(tokens_per_camera, list(budgets))
    parts, offset = [], 0
    for count, budget in zip(tokens_per_camera, budgets):
        if budget:
            parts.append(topk_original_order(scores[offset : offset + count], budget) + offset)
        offset += count
    return torch.cat(parts)
