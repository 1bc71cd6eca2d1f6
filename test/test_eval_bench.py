"""`fastdrive bench`: 3B token counts and FLOPs without weights; a reduced-depth timing runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fastdrive_ros.eval.bench import estimate_text_tokens, reduced
from fastdrive_ros.eval.bench_run import format_report, run_bench
from fastdrive_ros.eval.cli import register


def test_3b_reports_paper_token_counts_without_timing_on_cpu(tmp_path: Path) -> None:
    report = run_bench(config="3b", text_tokens=100, out=tmp_path / "b.json", progress=False)
    full = report["full_depth"]
    assert full["total_tokens"] == 3249
    assert [r["kept_tokens"] for r in full["ratios"]] == [3249, 2436, 1624, 812]
    prefill = [r["prefill_tflops"] for r in full["ratios"]]
    assert 19 < prefill[0] < 23 and 4.5 < prefill[-1] < 6.5  # FACTS.md ~20 / ~5 TFLOP
    assert "timings" not in report and "timing skipped" in report["timing_skipped"]
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["full_depth"]["total_tokens"] == 3249
    text = format_report(report)
    assert "3249 visual tokens" in text and "812" in text and "2436" in text


def test_reduced_depth_keeps_a_full_attention_block() -> None:
    from fastdrive_ros.nn.configs import qwen25_vl_3b_config

    qwen = reduced(qwen25_vl_3b_config(), 2)
    assert qwen.vision_config.depth == 2 and qwen.vision_config.fullatt_block_indexes == [1]
    assert qwen.text_config.num_hidden_layers == 2
    assert qwen25_vl_3b_config().text_config.num_hidden_layers == 36  # the original is untouched
    with pytest.raises(ValueError, match="layers"):
        reduced(qwen, 0)


def test_compact_reduced_timing_runs_and_says_so(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    args = ["bench", "--config", "compact", "--layers", "1", "--ratios", "0,0.75"]
    args += ["--repeats", "1", "--warmup", "0", "--decode-tokens", "2", "--threads", "2"]
    args += ["--out", str(tmp_path / "c.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "REDUCED DEPTH" in result.output
    report = json.loads((tmp_path / "c.json").read_text())
    timings = report["timings"]
    assert report["full_depth"]["total_tokens"] == 1080
    assert timings["encoder_ms"] > 0 and set(timings["prefill_ms"]) == {"0.0", "0.75"}
    assert all(v > 0 for v in timings["decode_ms_per_token"].values())
    assert report["timed_analytic"]["encoder_tflops"] < report["full_depth"]["encoder_tflops"]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="config"):
        run_bench(config="7b", progress=False)
    with pytest.raises(ValueError, match="ratios"):
        run_bench(config="3b", ratios=[1.5], progress=False)


def test_text_token_estimate_counts_digits_and_special_tokens() -> None:
    assert estimate_text_tokens("<|im_start|>Speed 12.5 m/s<plan>") == 1 + 1 + 4 + 3 + 1


def test_cli_bad_input_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = ["--out", str(tmp_path / "b.json"), "--no-progress"]
    bad_ratio = runner.invoke(app, ["bench", "--config", "3b", "--ratios", "2", *out])
    assert bad_ratio.exit_code == 2 and "error: ratios must be in [0, 1)" in bad_ratio.output
    assert bad_ratio.exception is None or isinstance(bad_ratio.exception, SystemExit)
    bad_config = runner.invoke(app, ["bench", "--config", "7b", *out])
    assert bad_config.exit_code == 2 and "compact or 3b" in bad_config.output
    bad_device = runner.invoke(app, ["bench", "--device", "quantum", *out])
    assert bad_device.exit_code == 2 and "--device must be cpu or cuda" in bad_device.output
    assert not (tmp_path / "b.json").exists()
    missing = runner.invoke(
        app,
        ["eval", "--dataroot", str(tmp_path / "nope"), "--version", "v1.0-mini"]
        + ["--model", str(tmp_path / "model"), "--out", str(tmp_path / "eval")],
    )
    assert missing.exit_code == 2 and "error: nuScenes dataroot" in missing.output
    assert "Traceback" not in missing.output and not (tmp_path / "eval").exists()
