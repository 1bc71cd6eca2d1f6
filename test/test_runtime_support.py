"""Small stand-in encoder and pruner for the runtime tests, with the nn room's interfaces.

VisionEncoder: forward(pixels [C,3,H,W]) -> VisualTokens(tokens [N,D], grid_thw [C,3]); an
exportable twin maps pixels -> [C, n, D] with the same weights. ReconPruner: forward([B,n,D]) ->
[B,n]; select(visual, keep) -> Selection with ascending kept indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastdrive_ros.nn.recon_pruner import topk_original_order
from fastdrive_ros.nn.selection import Selection, VisualTokens
from fastdrive_ros.runtime.model_source import ModelParts

PATCH = 4
MERGE = 2


class TinyPatchTower(torch.nn.Module):
    """Patch embedding + one transformer layer per camera + 2x2 merge: [C,3,H,W] -> [C,n,D]."""

    def __init__(self, *, width: int = 16, out_dim: int = 24, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Conv2d(3, width, kernel_size=PATCH, stride=PATCH)
        self.block = torch.nn.TransformerEncoderLayer(
            width, nhead=2, dim_feedforward=2 * width, batch_first=True, dropout=0.0
        )
        self.merge = torch.nn.Linear(width * MERGE * MERGE, out_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.embed(pixels)  # [C, w, h, w]
        cams, width, gh, gw = x.shape
        seq = self.block(x.flatten(2).transpose(1, 2))  # [C, gh*gw, width]
        grid = seq.reshape(cams, gh // MERGE, MERGE, gw // MERGE, MERGE, width)
        grid = grid.permute(0, 1, 3, 2, 4, 5).reshape(cams, (gh // MERGE) * (gw // MERGE), -1)
        return self.merge(grid)


class StandInEncoder(torch.nn.Module):
    """VisionEncoder-shaped wrapper of TinyPatchTower."""

    patch_size = PATCH
    merge_size = MERGE

    def __init__(self, *, out_dim: int = 24, seed: int = 0) -> None:
        super().__init__()
        self.tower = TinyPatchTower(out_dim=out_dim, seed=seed)
        self.out_dim = out_dim

    def forward(self, pixels: torch.Tensor) -> VisualTokens:
        tokens = self.tower(pixels)
        cams, n, dim = tokens.shape
        grid = torch.tensor(
            [[1, pixels.shape[2] // PATCH, pixels.shape[3] // PATCH]] * cams, dtype=torch.long
        )
        return VisualTokens(tokens=tokens.reshape(cams * n, dim), grid_thw=grid)


class StandInPruner(torch.nn.Module):
    """ReconPruner-shaped scorer: a learnable query, one attention layer, a Hadamard scorer."""

    name = "reconpruner"
    stage = "encoder"

    def __init__(self, *, dim: int = 24, seed: int = 1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.query = torch.nn.Parameter(torch.randn(1, 1, dim))
        self.layer = torch.nn.TransformerEncoderLayer(
            dim, nhead=2, dim_feedforward=2 * dim, batch_first=True, dropout=0.0
        )
        self.score = torch.nn.Linear(dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        seq = torch.cat([self.query.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        out = self.layer(seq)
        return self.score(out[:, 1:] * out[:, :1]).squeeze(-1)

    def select(self, visual: VisualTokens, keep: int | Sequence[int]) -> Selection:
        per_cam = visual.tokens_per_camera
        tokens = visual.tokens.reshape(len(per_cam), per_cam[0], -1)
        scores = self.forward(tokens)
        flat = scores.reshape(-1)
        if isinstance(keep, int):
            index = topk_original_order(flat, keep)
        else:
            parts = [
                topk_original_order(scores[c], k) + c * per_cam[0]
                for c, k in enumerate(keep)
                if k > 0
            ]
            index = torch.cat(parts)
        return Selection(kept_index=index, scores=flat)


def make_parts(
    *,
    cameras: int = 2,
    image_size: tuple[int, int] = (32, 48),
    dim: int = 24,
    budget: str = "global",
    prune_ratio: float = 0.5,
    seed: int = 0,
) -> ModelParts:
    encoder = StandInEncoder(out_dim=dim, seed=seed).eval()
    pruner = StandInPruner(dim=dim, seed=seed + 1).eval()
    unit = PATCH * MERGE
    return ModelParts(
        encoder=encoder,
        pruner=pruner,
        image_size=image_size,
        camera_names=tuple(f"CAM_{i}" for i in range(cameras)),
        tokens_per_camera=(image_size[0] // unit) * (image_size[1] // unit),
        token_dim=dim,
        make_exportable=lambda size: encoder.tower,
        patch_size=PATCH,
        default_prune_ratio=prune_ratio,
        budget=budget,  # type: ignore[arg-type]
    )


def test_stand_in_matches_its_exportable_twin() -> None:
    parts = make_parts()
    pixels = torch.randn(parts.input_shape)
    visual = parts.encoder(pixels)
    twin = parts.make_exportable(parts.image_size)(pixels)
    assert visual.tokens.shape == (2 * parts.tokens_per_camera, parts.token_dim)
    assert torch.equal(visual.tokens, twin.reshape(visual.tokens.shape))
    sel = parts.pruner.select(visual, 5)
    assert sel.kept_index.tolist() == sorted(sel.kept_index.tolist())


def write_small_export(
    path, *, precision: str = "fp32", k: int = 8, n: int = 16, model_hash: str = "0" * 64
):
    """A hand-made exported-graph stand-in (one TopK) with real fastdrive export metadata.

    For tests of what reads exports (engine cache, TensorRT builder) without a 5 s torch export.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fastdrive_ros.runtime.keep_plan import KeepPlan
    from fastdrive_ros.runtime.onnx_meta import METADATA_KEY, ExportMetadata

    plan = KeepPlan(
        mode="global",
        cameras=1,
        tokens_per_camera=n,
        keep=k,
        keep_per_camera=(),
        prune_ratio=1 - k / n,
        reason="test",
    )
    meta = ExportMetadata(
        selector="reconpruner",
        plan=plan,
        image_size=(8, 8 * n),
        token_dim=1,
        grid_thw=((1, 2, 2 * n),),
        camera_names=("CAM_FRONT",),
        precision=precision,  # type: ignore[arg-type]
        opset=20,
        model_hash=model_hash,
        exporter="dynamo",
        torch_version=torch.__version__,
    )
    graph = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk", sorted=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
        [
            helper.make_tensor_value_info("values", TensorProto.FLOAT, [k]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, [k]),
        ],
        initializer=[numpy_helper.from_array(np.array([k], dtype=np.int64), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    onnx.save(model, str(path))
    return path


def make_real_parts(
    *,
    cameras: int = 2,
    image_size: tuple[int, int] = (112, 196),
    budget: str = "global",
    prune_ratio: float = 0.5,
    seed: int = 0,
) -> ModelParts:
    """A tiny random Qwen2.5-VL vision tower + ReconPruner (the nn room's real modules)."""
    import dataclasses

    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig

    from fastdrive_ros.core_types import CAMERA_NAMES
    from fastdrive_ros.nn.recon_pruner import ReconPruner, ReconPrunerConfig
    from fastdrive_ros.nn.vision import VisionEncoder
    from fastdrive_ros.runtime.model_source import parts_from_modules

    config = Qwen2_5_VLVisionConfig(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=64,
        fullatt_block_indexes=[1],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = VisionEncoder(config=config).eval()
        pruner_config = dataclasses.replace(ReconPrunerConfig.for_width(64), budget=budget)
        pruner = ReconPruner(config=pruner_config).eval()
    return parts_from_modules(
        encoder=encoder,
        pruner=pruner,
        image_size=image_size,
        camera_names=CAMERA_NAMES[:cameras],
        default_prune_ratio=prune_ratio,
    )
