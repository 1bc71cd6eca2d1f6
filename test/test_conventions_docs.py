"""The README and the model card say which conventions are used (issue 12), and agree."""

from __future__ import annotations

from pathlib import Path

from fastdrive_ros.train.model_card import _conventions

ROOT = Path(__file__).resolve().parents[1]
NAMED = (
    "LiDAR",
    "rear axle",
    "672x392",
    "1596x1596",
    "steering-wheel angle",
    "256",
    "central differences",
    "6 layers",
    "SparseVLM",
)


def test_the_shipped_model_card_carries_the_generated_conventions() -> None:
    card = (ROOT / "models" / "default" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "## Conventions" in card
    for line in _conventions():  # the generator and the shipped card say the same
        assert line in card, line[:60]
    section = card.split("## Conventions")[1].split("## Files")[0]
    for word in NAMED:
        assert word in section, word


def test_the_readme_names_each_convention() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Conventions")[1].split("\n## ")[0]
    for word in NAMED + ("--reference auto", "--resolution paper", "Not matched yet"):
        assert word in section, word
