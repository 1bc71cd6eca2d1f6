"""transformers drift: the KV-cache keyword is read from the signature, an empty cache is loud."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastdrive_ros.core_types import EgoState
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.llm_stage import cache_keyword
from fastdrive_ros.nn.planner import VLAPlanner
from fastdrive_ros.nn.tokenizer import train_compact_tokenizer


def _layer_524(hidden, attention_mask=None, cache=None, use_cache=False, **kwargs): ...
def _layer_456(hidden, attention_mask=None, past_key_values=None, use_cache=False, **kw): ...
def _layer_449(hidden, attention_mask=None, past_key_value=None, use_cache=False, **kw): ...
def _layer_both(hidden, cache=None, past_key_values=None, **kwargs): ...
def _layer_none(hidden, attention_mask=None, **kwargs): ...


@pytest.mark.parametrize(
    ("forward", "keyword"),
    [
        (_layer_524, "cache"),
        (_layer_456, "past_key_values"),
        (_layer_449, "past_key_value"),
        (_layer_both, "cache"),  # the deprecated alias is never preferred
    ],
)
def test_cache_keyword_follows_the_signature(forward, keyword) -> None:
    assert cache_keyword(forward) == keyword


def test_a_layer_without_a_cache_keyword_is_refused() -> None:
    with pytest.raises(RuntimeError, match="none of the KV-cache keywords.*constraints.txt"):
        cache_keyword(_layer_none)


def test_installed_transformers_fills_the_cache_and_a_swallowed_keyword_is_an_error() -> None:
    torch.manual_seed(0)
    planner = VLAPlanner(
        qwen_config=tiny_config(cameras=1).qwen_config(),
        tokenizer=train_compact_tokenizer(vocab_size=512),
        prompt_style="compact",
        regression_head=False,
    ).eval()
    t = np.arange(-6, 1) * 0.5
    ego = EgoState(
        np.stack([5.0 * t, 0 * t], 1), speed=5.0, acceleration=0.0, yaw_rate=0.0, steering=0.0
    )
    args = dict(
        kept_tokens=torch.randn(6, 64),
        kept_index=torch.arange(6),
        grid_thw=torch.tensor([[1, 4, 6]]),
        ego=ego,
        head="text",
        max_new_tokens=4,
    )
    with torch.no_grad():
        planner.plan(**args)  # the installed release: no error, the cache is filled
        # what a renamed keyword did to 5.24: swallowed by **kwargs, the cache stays empty
        planner._cache_kw = "past_key_value_renamed"
        with pytest.raises(RuntimeError, match="KV cache of layers .* is empty after prefill"):
            planner.plan(**args)
