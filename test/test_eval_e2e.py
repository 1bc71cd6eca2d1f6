"""`fastdrive eval` end to end: tiny synthetic scenes, a tiny random VLA bundle, real selectors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import pytest
import torch
import typer
from typer.testing import CliRunner

from fastdrive_ros.data.reader import NuScenesReader
from fastdrive_ros.data.synth import generate_dataset
from fastdrive_ros.eval.cli import register
from fastdrive_ros.eval.records import EvalResults
from fastdrive_ros.eval.runner import run_eval, run_eval_settings
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.vla import VLA

HORIZONS = ("1s", "2s", "3s", "avg")


def _llm_lengths(selector, num_layers: int, n_visual: int, keep: int, text: int) -> tuple:
    """Independent reference: sequence length per LLM layer from the selector's prune points."""
    points = dict(selector.prune_points(num_layers, n_visual, keep))
    lengths, visual = [], n_visual
    for layer in range(num_layers):
        visual = points.get(layer, visual)
        lengths.append(visual + text)
    return tuple(lengths)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    generate_dataset(
        root / "data",
        scenes=2,
        seconds=4.0,
        seed=3,
        image_size=(160, 90),
        sweeps=False,
        progress=False,
        town_grid=2,
    )
    VLA.build(tiny_config(cameras=6), seed=0).save_pretrained(root / "model")
    torch.set_num_threads(2)
    app = typer.Typer()
    register(app)
    args = ["eval", "--dataroot", str(root / "data"), "--version", "v1.0-synth"]
    args += ["--model", str(root / "model"), "--out", str(root / "out"), "--split", "all"]
    args += ["--pruners", "reconpruner,fastv", "--ratios", "0,0.5", "--max-samples", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "results.json" in result.output and "prefill at 25 %" in result.output
    return root / "out"


def test_results_json_is_complete_and_finite(evaluated: Path) -> None:
    data = json.loads((evaluated / "results.json").read_text())
    meta = data["metadata"]
    assert meta["version"] == "v1.0-synth" and meta["samples"] == 4 and meta["torch"]
    records = {(r["pruner"], r["prune_ratio"]): r for r in data["records"]}
    assert set(records) == {("none", 0.0), ("reconpruner", 0.0), ("reconpruner", 0.5)} | {
        ("fastv", 0.0),
        ("fastv", 0.5),
    }
    for key in (("reconpruner", 0.5), ("fastv", 0.5), ("none", 0.0)):
        record = records[key]
        assert record["samples"] == 4
        for metric in ("l2", "collision"):
            for h in HORIZONS:
                assert math.isfinite(record[f"{metric}_{h}"]), (key, metric, h)
        for field in ("encoder_ms", "prefill_ms", "total_ms", "encoder_tflops", "prefill_tflops"):
            assert record[field] > 0, (key, field)
    n = records[("none", 0.0)]["total_tokens"]
    assert n == 6 * 2 * 3  # six 56x84 cameras: 2 x 3 merged tokens each
    assert records[("reconpruner", 0.5)]["kept_tokens"] == n // 2
    assert records[("fastv", 0.5)]["kept_tokens"] == n // 2
    assert records[("reconpruner", 0.5)]["pruner_tflops"] > 0
    assert (
        records[("reconpruner", 0.5)]["prefill_tflops"] < records[("none", 0.0)]["prefill_tflops"]
    )
    cv = next(r for r in data["references"] if r["pruner"] == "constant_velocity")
    assert cv["samples"] == 4 and math.isfinite(cv["l2_avg"])
    assert [t["status"] for t in data["targets"]] and len(data["targets"]) == 4


def test_markdown_plots_and_overlays(evaluated: Path) -> None:
    md = (evaluated / "results.md").read_text()
    assert "## Planning quality" in md and "## Efficiency" in md and "## Targets" in md
    assert "Constant velocity" in md and "ReconPruner" in md and "FastV" in md
    for name in ("quality_vs_keep.png", "latency_vs_keep.png"):
        image = cv2.imread(str(evaluated / name))
        assert image is not None and image.shape[0] > 100
    overlays = sorted((evaluated / "overlays").glob("*.png"))
    assert {p.stem.rsplit("_", 1)[1] for p in overlays} == {"reconpruner", "fastv"}
    assert all(cv2.imread(str(p)) is not None for p in overlays)


def test_adapter_flop_inputs_match_the_planner(evaluated: Path) -> None:
    import numpy as np

    from fastdrive_ros.core_types import EgoState
    from fastdrive_ros.eval.vla_adapter import VLAEvalModel
    from fastdrive_ros.nn.selection import Selection

    model = VLAEvalModel.from_folder(evaluated.parent / "model")
    images = torch.randint(0, 255, (6, 90, 160, 3), dtype=torch.uint8)
    visual = model.encode(model.preprocess(images))
    n = int(visual.tokens.shape[0])
    ego = EgoState(np.zeros((7, 2)), speed=4.0, acceleration=0.0, yaw_rate=0.1, steering=0.0)
    planner = model.vla.planner
    plain = planner.plan_detailed(
        kept_tokens=visual.tokens[:9],
        kept_index=torch.arange(9),
        grid_thw=visual.grid_thw,
        ego=ego,
    )
    assert set(plain.tokens_per_layer) == {9 + model.text_tokens(ego)}
    for name in ("fastv", "sparsevlm"):
        selector = model.selector(name, seed=0)
        out = model.plan(
            visual, Selection(kept_index=torch.arange(n)), ego, llm_selector=selector, keep=9
        )
        assert out.kept_index is not None and out.kept_index.numel() == 9
        computed = _llm_lengths(selector, planner.num_layers, n, 9, model.text_tokens(ego))
        assert out.tokens_per_layer == computed


def test_max_scenes_evaluates_whole_scenes_and_says_so(evaluated: Path) -> None:
    root = evaluated.parent
    reader = NuScenesReader(dataroot=root / "data", version="v1.0-synth", split="all")
    first, second = reader.scenes()[:2]
    common = dict(dataroot=root / "data", version="v1.0-synth", model_folder=root / "model")
    common |= dict(pruners=["none"], ratios=[0.0], split="all", progress=False)
    common |= dict(overlay_samples=0)
    one = run_eval(out=root / "one", max_scenes=1, **common)
    assert one.metadata["samples"] == len(reader.sample_tokens(first)) >= 2
    assert one.metadata["max_scenes"] == 1 and one.metadata["scenes"] == 1
    both = run_eval(out=root / "both", max_scenes=5, **common)  # more than there are: all
    total = len(reader.sample_tokens(first)) + len(reader.sample_tokens(second))
    assert both.metadata["samples"] == total and both.metadata["scenes"] == 2
    with pytest.raises(ValueError, match="--max-scenes must be >= 1"):
        run_eval(out=root / "none", max_scenes=0, **common)
    # both ego-input settings from one pass: a folder each, the full one as if run alone
    two = run_eval_settings(
        out=root / "two", max_scenes=1, ego_inputs=("full", "minimal"), **common
    )
    for setting in ("full", "minimal"):
        written = EvalResults.load(root / "two" / setting / "results.json")
        assert written.metadata["ego_inputs"] == setting
        assert written.metadata["samples"] == one.metadata["samples"]
    assert two["full"].unpruned.metric("l2") == pytest.approx(one.unpruned.metric("l2"))
    with pytest.raises(ValueError, match="each once"):
        run_eval_settings(out=root / "bad", ego_inputs=("full", "full"), **common)
