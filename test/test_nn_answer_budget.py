"""The default decoding budget holds a full Impromptu `<PLANNING>` answer (issue 12).

96 tokens cut every real-checkpoint answer before `</PLANNING>`: under Qwen2's pre-tokenizer
every digit is its own token, and the answer's lead sentence alone is ~60 tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Regex, pre_tokenizers

from fastdrive_ros.core_types import DEFAULT_MAX_NEW_TOKENS, EgoState, PlanOk
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.nn.prompt import format_planning
from fastdrive_ros.nn.tokenizer import QWEN2_PRETOKENIZE, train_compact_tokenizer
from fastdrive_ros.pipeline.config import PipelineConfig

TYPICAL = np.array(
    [[2.51, 0.01], [5.02, 0.05], [7.55, 0.12], [10.1, 0.22], [12.68, 0.35], [15.27, 0.51]]
)
WIDEST = np.full((6, 2), -199.99)  # the largest coordinates the parser accepts, all digits


def _qwen2_pretokens(text: str) -> int:
    split = pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated")
    return len(split.pre_tokenize_str(text))


@pytest.fixture(scope="module")
def tokenizer():
    return train_compact_tokenizer(vocab_size=512)


def test_a_full_answer_needs_more_than_the_old_budget_and_fits_the_new_one(tokenizer) -> None:
    typical, widest = format_planning(TYPICAL), format_planning(WIDEST)
    # each pre-token is at least one token of a real Qwen2 vocabulary
    assert _qwen2_pretokens(typical) >= 129 > 96
    assert _qwen2_pretokens(widest) < DEFAULT_MAX_NEW_TOKENS
    # a vocabulary with Qwen2's rules, trained on these prompts: tokens + EOS within budget
    assert len(tokenizer.encode(widest)) + 1 <= DEFAULT_MAX_NEW_TOKENS
    assert PipelineConfig().max_new_tokens == DEFAULT_MAX_NEW_TOKENS


def test_the_planner_decodes_a_full_answer_within_its_default_budget(tokenizer) -> None:
    torch.manual_seed(0)
    planner = VLAPlanner(
        qwen_config=tiny_config(cameras=1).qwen_config(),
        tokenizer=tokenizer,
        prompt_style="impromptu",
        regression_head=False,
    ).eval()
    answer = format_planning(WIDEST)
    target = tokenizer.encode(answer) + [tokenizer.eos_ids[0]]
    step = {"i": 0}
    original = planner.lm_head.forward

    def forced(hidden: torch.Tensor) -> torch.Tensor:  # spells the answer, token by token
        logits = original(hidden).clone()
        logits[..., target[min(step["i"], len(target) - 1)]] = 1e4
        step["i"] += 1
        return logits

    planner.lm_head.forward = forced
    t = np.arange(-6, 1) * 0.5
    ego = EgoState(
        np.stack([5 * t, 0 * t], 1), speed=5.0, acceleration=0.0, yaw_rate=0.0, steering=0.0
    )
    with torch.no_grad():
        result = planner.plan(
            kept_tokens=torch.randn(6, 64),
            kept_index=torch.arange(6),
            grid_thw=torch.tensor([[1, 4, 6]]),
            ego=ego,
            head="text",
        )
    assert isinstance(result, PlanOk), result
    np.testing.assert_allclose(result.waypoints, WIDEST)
    assert result.generated_tokens == len(target) - 1 > 96
