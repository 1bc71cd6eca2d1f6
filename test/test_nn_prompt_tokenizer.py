"""The compact tokenizer: Qwen2-style byte-level BPE, exact round trips, short prompts, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.nn.prompt import build_prompt, format_planning
from fastdrive_ros.nn.tokenizer import (
    PlannerTokenizer,
    check_tokenizer_info,
    tokenizer_info,
    train_compact_tokenizer,
)


@pytest.fixture(scope="module")
def tokenizer() -> PlannerTokenizer:
    return train_compact_tokenizer(vocab_size=512)


def _ego(speed: float = 7.3) -> EgoState:
    t = np.arange(-6, 1) * 0.5
    return EgoState(
        history_xy=np.stack([speed * t, 0.01 * t], axis=1),
        speed=speed,
        acceleration=0.4,
        yaw_rate=-0.05,
        steering=-0.02,
        command="right",
    )


def test_round_trip_is_exact(tokenizer: PlannerTokenizer) -> None:
    for style in ("compact", "impromptu"):
        prompt = "".join(build_prompt(_ego(), num_cameras=6, style=style).texts)
        answer = format_planning(np.arange(12.0).reshape(6, 2) * -1.37, style=style)
        for text in (prompt, answer, "ünïcode and 12345 digits"):
            ids = tokenizer.encode(text)
            assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_digits_are_single_tokens_and_specials_are_atomic(tokenizer: PlannerTokenizer) -> None:
    pieces = [tokenizer.backend.id_to_token(i) for i in tokenizer.encode("v123.45")]
    assert {"1", "2", "3", "4", "5"} <= set(pieces)
    ids = tokenizer.encode("<|vision_start|><|vision_end|><plan>")
    assert ids == [tokenizer.vision_start_id, tokenizer.vision_end_id, tokenizer.query_id]
    assert tokenizer.decode(ids) == ""  # specials are skipped when decoding answers
    assert tokenizer.eos_ids and tokenizer.vocab_size <= 512


def test_compact_prompt_is_tens_of_tokens(tokenizer: PlannerTokenizer) -> None:
    spec = build_prompt(_ego(), num_cameras=6, style="compact")
    count = sum(len(tokenizer.encode(t)) for t in spec.texts)
    assert 20 <= count <= 45, count  # 12 vision markers, ~25 for the ego state


def test_save_load_and_checks(tokenizer: PlannerTokenizer, tmp_path) -> None:
    tokenizer.save(tmp_path)
    loaded = PlannerTokenizer.load(tmp_path)
    assert loaded.encode("h-1.5,0.25<plan>") == tokenizer.encode("h-1.5,0.25<plan>")
    info = tokenizer_info(tokenizer)
    check_tokenizer_info(loaded, info)
    bad = json.loads(json.dumps(info))
    bad["special"]["<plan>"] += 1
    with pytest.raises(ValueError, match="does not match"):
        check_tokenizer_info(loaded, bad)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        PlannerTokenizer.load(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid"):
        PlannerTokenizer.load(tmp_path / "broken")
