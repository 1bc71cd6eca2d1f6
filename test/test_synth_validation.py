"""Bad arguments to `generate_dataset` / `fastdrive synth` fail early with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fastdrive_ros.data.synth import generate_dataset
from fastdrive_ros.data.synth.cli import parse_size, register
from fastdrive_ros.data.synth.generate import CAN_BLACKLIST, scene_names


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenes": 0}, "scenes must be a positive integer"),
        ({"seconds": 3.0}, "3 s planning future"),
        ({"seconds": 10_000.0}, "seconds must be in"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"image_size": (10, 10)}, "image size must be integers between"),
        ({"image_size": (1600,)}, "image_size must be (width, height)"),
        ({"image_size": (448.5, 252)}, "image size must be integers"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"town_grid": 1}, "town_grid must be an integer in [2, 8]"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"scenes": 1, "seconds": 4.0, "seed": 0, "image_size": (160, 90)} | kwargs
    with pytest.raises(ValueError, match=None) as err:
        generate_dataset(tmp_path / "out", progress=False, **args)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists(), "nothing may be written for bad arguments"


def test_refuses_non_empty_output(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="not empty"):
        generate_dataset(
            tmp_path, scenes=1, seconds=4.0, seed=0, image_size=(160, 90), progress=False
        )
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_scene_names_skip_can_blacklist() -> None:
    names = scene_names(200)
    assert names[0] == "scene-0000" and len(set(names)) == 200
    assert not {f"scene-{n:04d}" for n in CAN_BLACKLIST} & set(names)
    assert all(len(n) == 10 for n in names)


def test_parse_size() -> None:
    assert parse_size("1600x900") == (1600, 900)
    assert parse_size("448X252") == (448, 252)
    for bad in ("448", "x252", "448x252x3", "wide"):
        with pytest.raises(typer.BadParameter):
            parse_size(bad)


def _text(output: str) -> str:
    """CLI output as one line, without the boxes rich draws around errors."""
    return " ".join(output.replace("│", " ").split())


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command keeps `synth` a named subcommand
        """Placeholder."""

    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "12x"], "WIDTHxHEIGHT"),
        (["--seconds", "1"], "seconds must be in"),
        (["--scenes", "0"], "scenes must be a positive integer"),
    ],
)
def test_cli_reports_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(_app(), ["synth", "--out", str(tmp_path / "ds"), *args])
    assert result.exit_code == 2
    assert message in _text(result.output)


def test_cli_help_lists_every_option() -> None:
    result = CliRunner().invoke(_app(), ["synth", "--help"])
    assert result.exit_code == 0
    text = _text(result.output)
    for option in (
        "--out",
        "--scenes",
        "--seconds",
        "--seed",
        "--image-size",
        "--workers",
        "--keyframes-only",
        "--overwrite",
        "--town-grid",
        "--brake-lights",
        "--quiet",
        "--no-progress",
    ):
        assert option in text


def test_cli_writes_a_small_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    args = [
        "synth",
        "--out",
        str(out),
        "--scenes",
        "1",
        "--seconds",
        "3.5",
        "--image-size",
        "96x54",
        "--keyframes-only",
        "--town-grid",
        "2",
        "--quiet",
        "--seed",
        "4",
    ]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "wrote 1 scenes, 7 keyframes, 42 images" in result.output
    assert len(list((out / "samples" / "CAM_FRONT").glob("*.jpg"))) == 7
    assert not (out / "sweeps").exists()
    again = CliRunner().invoke(_app(), args)  # refuses to overwrite by default
    assert again.exit_code == 2 and "not empty" in _text(again.output)
    assert CliRunner().invoke(_app(), [*args, "--overwrite"]).exit_code == 0
