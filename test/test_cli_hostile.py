"""What a hostile new user typed (issue 11): each is `error: ...` or a usage error, exit 2, fast.

Before, each of these was a Python traceback, a silently wrong run, or an error only after
seconds of work. Nothing here loads a model or generates data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fastdrive_ros.cli import build_app, parse_image_size

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(build_app(), list(args), env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    return result, text


def test_image_size_is_width_by_height_everywhere() -> None:
    assert parse_image_size("640x360") == (640, 360)
    from fastdrive_ros.data.synth.cli import parse_size as synth_size
    from fastdrive_ros.train.cli import parse_size as train_size

    assert synth_size("504x280") == (504, 280)
    assert train_size("504x280") == (280, 504)  # the model's (H, W), from the same WxH text
    for command in ("demo", "synth", "train-pruner"):
        _, text = run(command, "--help")
        assert "WxH" in text, command


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--image-size", "0x0"], "image size must be positive"),
        (["--image-size", "99999x99999"], "4096x4096"),
        (["--seconds", "0"], "seconds must be in"),
        (["--prune-ratio", "1.5"], "[0, 1)"),
        (["--backend", "gpu"], "use auto, onnxruntime"),
    ],
)
def test_demo_checks_its_options_before_any_work(tmp_path: Path, args, needle) -> None:
    result, text = run("demo", "--out", str(tmp_path / "demo"), *args)
    assert result.exit_code == 2 and needle in text, text
    assert not (tmp_path / "demo").exists()  # nothing generated


def test_demo_refuses_a_file_as_out(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    result, text = run("demo", "--out", str(tmp_path / "f"))
    assert result.exit_code == 2 and "error:" in text and "is a file" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["drive", "--log-level", "LOUD"], "not a log level"),
        (["replay", "x", "--out", "y", "--log-level", "LOUD"], "not a log level"),
        (["drive", "--domain-id", "300"], "--domain-id"),
        (["drive", "--duration", "-5"], "--duration"),
        (["bench", "--decode-tokens", "-1"], "--decode-tokens"),
        (["bench", "--repeats", "0"], "--repeats"),
    ],
)
def test_bad_numbers_and_names_are_usage_errors(args, needle) -> None:
    result, text = run(*args)
    assert result.exit_code == 2 and needle in text, text
    assert "Traceback" not in result.output


def test_bench_layers_beyond_the_model_is_an_error(tmp_path: Path) -> None:
    result, text = run("bench", "--layers", "999", "--out", str(tmp_path / "b.json"))
    assert result.exit_code == 2 and "--layers must be in 1..4" in text, text


@pytest.mark.parametrize("keep_min", ["2", "-0.5", "0"])
def test_train_planner_keep_min_is_a_share(tmp_path: Path, keep_min: str) -> None:
    result, text = run(
        "train-planner", "--model", str(tmp_path), "--dataroot", str(tmp_path), "--version",
        "v1.0-synth", "--out", str(tmp_path / "o"), "--keep-min", keep_min,
    )  # fmt: skip
    assert result.exit_code == 2 and "--keep-min" in text and "(0, 1]" in text, text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_train_pruner_cuda_without_a_gpu(tmp_path: Path) -> None:
    result, text = run(
        "train-pruner", "--model", str(tmp_path), "--dataroot", str(tmp_path), "--version",
        "v1.0-synth", "--out", str(tmp_path / "o"), "--device", "cuda",
    )  # fmt: skip
    assert result.exit_code == 2 and "error:" in text and "no CUDA GPU" in text, text
    assert "Traceback" not in result.output


def test_masks_with_a_segmenter_that_does_not_exist(tmp_path: Path) -> None:
    from fastdrive_ros.data.fg_masks import load_segmenter

    with pytest.raises(ValueError, match="cannot be loaded.*AttributeError"):
        load_segmenter("os:nosuch")
    with pytest.raises(ValueError, match="cannot be loaded.*ModuleNotFoundError"):
        load_segmenter("no_such_module_here:factory")
    result, text = run(
        "masks", "--dataroot", str(tmp_path), "--version", "v1.0-mini", "--out",
        str(tmp_path / "m"), "--segmenter", "os:nosuch",
    )  # fmt: skip
    assert result.exit_code == 2 and "error:" in text, text
    assert "Traceback" not in result.output
