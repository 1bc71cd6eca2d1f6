"""The planner's tokenizer: a real checkpoint's tokenizer.json, or a small one trained here.

The compact tokenizer is built like Qwen2's (byte-level BPE, Qwen2's pre-tokenizer regex that
splits every digit into its own token, the same chat and vision special tokens) but trained on
this project's prompts and answers, so its vocabulary is a few hundred tokens and decoding gives
back the exact text. Files are read from a local folder only, never from the hub.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from fastdrive_ros.core_types import HISTORY_STEPS, PLAN_DT_S, PLAN_STEPS, EgoState
from fastdrive_ros.nn.prompt import (
    IM_END,
    IM_START,
    IMAGE_PAD,
    PLAN_QUERY,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    build_prompt,
    format_planning,
)

TOKENIZER_FILE = "tokenizer.json"
ENDOFTEXT = "<|endoftext|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    VISION_START,
    VISION_END,
    IMAGE_PAD,
    PLAN_QUERY,
    VIDEO_PAD,
)
EOS_TOKENS: tuple[str, ...] = (IM_END, ENDOFTEXT)
# Qwen2's pre-tokenizer: words, single digits, punctuation runs, whitespace.
QWEN2_PRETOKENIZE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)


class PlannerTokenizer:
    """Text <-> token ids for the planner, with the ids of the tokens the planner places itself.

    Attributes:
        eos_ids: ids that end greedy decoding.
        vision_start_id, vision_end_id, image_pad_id: Qwen2.5-VL's vision markers.
        query_id: id of PLAN_QUERY (the regression head's read-out token), None if absent.
    """

    def __init__(self, *, backend, eos_tokens: Sequence[str] = EOS_TOKENS) -> None:
        self._backend = backend
        self.vision_start_id = self.id_of(VISION_START)
        self.vision_end_id = self.id_of(VISION_END)
        self.image_pad_id = self.id_of(IMAGE_PAD)
        eos = [backend.token_to_id(t) for t in eos_tokens]
        self.eos_ids = tuple(i for i in eos if i is not None)
        if not self.eos_ids:
            raise ValueError(f"tokenizer has none of the end tokens {tuple(eos_tokens)}")
        self.query_id = backend.token_to_id(PLAN_QUERY)

    @property
    def backend(self):
        """The underlying `tokenizers.Tokenizer`."""
        return self._backend

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def id_of(self, token: str) -> int:
        token_id = self._backend.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token!r} token: is it a Qwen2.5-VL tokenizer?")
        return token_id

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, special tokens written in it included, nothing added."""
        return self._backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._backend.save(str(path))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> PlannerTokenizer:
        """Read `<folder>/tokenizer.json` (ours, or a Qwen2.5-VL / Impromptu-VLA checkpoint's)."""
        from tokenizers import Tokenizer

        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: copy the checkpoint's tokenizer.json into the folder "
                "(or rebuild the bundle with `fastdrive build-default`)"
            )
        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust parser raises plain Exception subclasses
            raise ValueError(f"{path} is not a valid tokenizers file: {exc}") from exc
        return cls(backend=backend)


def compact_corpus(*, samples: int = 3000, seed: int = 0) -> list[str]:
    """Compact prompts and answers (a tenth in Impromptu's wording) for plausible ego states."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    commands = ("left", "right", "straight")
    times = np.arange(-(HISTORY_STEPS - 1), 1) * PLAN_DT_S
    future_t = np.arange(1, PLAN_STEPS + 1) * PLAN_DT_S
    for _ in range(samples):
        speed = float(rng.uniform(0.0, 20.0))
        curve = float(rng.normal(0.0, 0.02))
        history = np.stack([speed * times, 0.5 * curve * (speed * times) ** 2], axis=1)
        history += rng.normal(0.0, 0.05, history.shape) * (times[:, None] != 0)
        ego = EgoState(
            history_xy=history,
            speed=speed,
            acceleration=float(rng.normal(0.0, 1.0)),
            yaw_rate=curve * speed,
            steering=float(rng.normal(0.0, 0.1)),
            command=commands[int(rng.integers(3))],
        )
        future = np.stack([speed * future_t, 0.5 * curve * (speed * future_t) ** 2], axis=1)
        texts.append("".join(build_prompt(ego, num_cameras=6, style="compact").texts))
        texts.append(format_planning(future, style="compact"))
        if rng.random() < 0.1:  # some of Impromptu's wording, so its prompts stay short too
            cams = 1 + 5 * int(rng.integers(2))
            texts.append("".join(build_prompt(ego, num_cameras=cams, style="impromptu").texts))
            texts.append(format_planning(future, style="impromptu"))
    return texts


def train_compact_tokenizer(
    corpus: Iterable[str] | None = None, *, vocab_size: int = 512
) -> PlannerTokenizer:
    """A byte-level BPE tokenizer in Qwen2's style, trained on `corpus` (default: ours).

    Training is deterministic; the default corpus's result is cached per vocab_size.
    """
    from tokenizers import Tokenizer

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must cover the 256 bytes and specials, got {vocab_size}")
    if corpus is None:
        return PlannerTokenizer(backend=Tokenizer.from_str(_default_tokenizer_json(vocab_size)))
    return PlannerTokenizer(backend=_train(corpus, vocab_size))


@functools.lru_cache(maxsize=4)
def _default_tokenizer_json(vocab_size: int) -> str:
    return _train(compact_corpus(), vocab_size).to_str()


def _train(corpus: Iterable[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.trainers import BpeTrainer

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    return backend


def tokenizer_info(tokenizer: PlannerTokenizer) -> dict[str, object]:
    """What a bundle's config records about its tokenizer (checked again when loading)."""
    return {
        "file": TOKENIZER_FILE,
        "vocab_size": tokenizer.vocab_size,
        "special": {
            name: tokenizer.backend.token_to_id(name)
            for name in SPECIAL_TOKENS
            if tokenizer.backend.token_to_id(name) is not None
        },
    }


def check_tokenizer_info(tokenizer: PlannerTokenizer, info: dict[str, object]) -> None:
    """Raise if the tokenizer on disk is not the one the bundle was built with."""
    expected = info.get("special", {})
    found = tokenizer_info(tokenizer)["special"]
    if expected and expected != found:
        raise ValueError(
            "tokenizer.json does not match config.json: special token ids "
            f"{json.dumps(found)} != {json.dumps(expected)}; rebuild or re-save the bundle"
        )
