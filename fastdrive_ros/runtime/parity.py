"""Does the exported graph select the same tokens as torch? Kept indices, token error, ties.

A kept-index difference is only acceptable as a near-tie flip: the tokens that swapped had
reference scores so close to the top-K threshold that the measured score error explains the swap.
Anything else is a real export bug and fails the check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from fastdrive_ros.runtime.base import EncoderPrunerOutput
from fastdrive_ros.runtime.keep_plan import KeepPlan

# Qwen2.5-VL (CLIP) image normalisation; the same constants as nn.vision.QWEN_MEAN / QWEN_STD.
_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


@dataclass(frozen=True)
class ParityCase:
    """Torch reference vs another backend on one input.

    Attributes:
        name: which input ("random", "road_scene", an image folder...).
        kept: K.
        index_diffs: kept tokens of the backend that the reference did not keep.
        flipped_margin: largest |reference score - top-K threshold| among swapped tokens.
        max_token_diff: max |kept token difference| over tokens both kept.
        max_score_diff: max |score difference| over all N tokens (nan when no scores).
        ok: indices identical or only near-tie flips, and the token error within tolerance.
        note: why it failed, or "near-tie flips" when it passed with differences.
    """

    name: str
    kept: int
    index_diffs: int
    flipped_margin: float
    max_token_diff: float
    max_score_diff: float
    ok: bool
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _np(tensor: torch.Tensor | None) -> np.ndarray | None:
    return None if tensor is None else tensor.detach().to("cpu", torch.float32).numpy()


def _thresholds(scores: np.ndarray, plan: KeepPlan) -> np.ndarray:
    """[N] the top-K threshold that applies to each token (global or its camera's)."""
    if plan.mode == "per_camera":
        n = plan.tokens_per_camera
        out = np.empty_like(scores)
        for cam, keep in enumerate(plan.keep_per_camera):
            part = scores[cam * n : (cam + 1) * n]
            out[cam * n : (cam + 1) * n] = np.sort(part)[::-1][keep - 1] if keep else np.inf
        return out
    return np.full_like(scores, np.sort(scores)[::-1][plan.keep - 1])


def compare(
    name: str,
    reference: EncoderPrunerOutput,
    other: EncoderPrunerOutput,
    plan: KeepPlan,
    *,
    token_tol: float,
    tie_floor: float,
) -> ParityCase:
    """Compare one backend's output with the torch reference for the same input.

    A swapped token is a near-tie flip when its reference score lies within 2 x the largest
    measured score error (+ tie_floor x the score spread) of the top-K threshold: both scores
    can move by that error, so rounding alone can reorder them. Tokens and scores must agree
    within token_tol x max(1, max |value|).
    """
    ref_idx = reference.kept_index.detach().cpu().numpy().astype(np.int64)
    got_idx = other.kept_index.detach().cpu().numpy().astype(np.int64)
    nan = float("nan")
    if got_idx.shape != ref_idx.shape:
        note = f"kept {got_idx.size} tokens, reference kept {ref_idx.size}"
        return ParityCase(name, int(ref_idx.size), -1, nan, nan, nan, False, note)
    notes: list[str] = []
    if got_idx.size > 1 and not np.all(np.diff(got_idx) > 0):
        notes.append("kept_index not strictly ascending")
    ref_scores = _np(reference.scores)
    got_scores = _np(other.scores)
    score_diff = nan
    if ref_scores is not None and got_scores is not None:
        if ref_scores.shape != got_scores.shape:
            notes.append(f"scores {got_scores.shape}, reference {ref_scores.shape}")
        else:
            score_diff = float(np.max(np.abs(ref_scores - got_scores)))
            score_scale = max(1.0, float(np.max(np.abs(ref_scores))))
            if score_diff > token_tol * score_scale:
                notes.append(f"score error {score_diff:.2e} > {token_tol:.1e} x {score_scale:.2g}")
    extra = np.setdiff1d(got_idx, ref_idx)
    flipped_margin = 0.0
    if extra.size:
        if ref_scores is None or np.isnan(score_diff):
            notes.append(f"{extra.size} kept indices differ and there are no scores to explain it")
        else:
            swapped = np.concatenate([extra, np.setdiff1d(ref_idx, got_idx)])
            thresholds = _thresholds(ref_scores, plan)
            flipped_margin = float(np.max(np.abs(ref_scores[swapped] - thresholds[swapped])))
            spread = float(np.ptp(ref_scores))
            allowed = 2.0 * score_diff + tie_floor * spread
            if flipped_margin > allowed:
                notes.append(
                    f"{extra.size} kept indices differ with score margin {flipped_margin:.2e} "
                    f"> {allowed:.2e} (2 x score error + tie floor)"
                )
    _, ref_rows, got_rows = np.intersect1d(ref_idx, got_idx, return_indices=True)
    ref_tokens = _np(reference.kept_tokens)
    got_tokens = _np(other.kept_tokens)
    token_diff = 0.0
    if ref_rows.size:
        token_diff = float(np.max(np.abs(ref_tokens[ref_rows] - got_tokens[got_rows])))
    scale = max(1.0, float(np.max(np.abs(ref_tokens)))) if ref_tokens.size else 1.0
    if token_diff > token_tol * scale:
        notes.append(f"token error {token_diff:.2e} > {token_tol:.1e} x scale {scale:.2g}")
    ok = not notes
    if ok and extra.size:
        notes.append("near-tie flips")
    return ParityCase(
        name=name,
        kept=int(ref_idx.size),
        index_diffs=int(extra.size),
        flipped_margin=flipped_margin,
        max_token_diff=token_diff,
        max_score_diff=score_diff,
        ok=ok,
        note="; ".join(notes),
    )


def tolerances(precision: str) -> tuple[float, float]:
    """(token_tol relative to max(1, max |value|), tie_floor relative to the score spread)."""
    return (5e-2, 1e-3) if precision == "fp16" else (1e-3, 1e-6)


def road_scene(height: int, width: int, seed: int) -> np.ndarray:
    """A plausible camera image [H, W, 3] uint8: sky, textured buildings, road, lanes, cars.

    Random noise makes every token look alike; this gives the pruner real structure (flat sky,
    clutter, a road with markings and objects) so parity is also checked where scores spread.
    """
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), dtype=np.float32)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    horizon = int(height * rng.uniform(0.35, 0.5))
    sky = np.array([0.45, 0.65, 0.95], dtype=np.float32) * (1.0 - 0.4 * rows[:horizon])
    image[:horizon] = sky[:, None, :]
    for _ in range(8):  # buildings with window texture
        x0 = int(rng.integers(0, width))
        w = int(rng.integers(width // 16 + 1, width // 5 + 2))
        top = int(rng.integers(0, max(1, horizon - 2)))
        colour = rng.uniform(0.2, 0.7, size=3)
        block = image[top:horizon, x0 : x0 + w]
        block[:] = colour + rng.normal(0.0, 0.08, size=block.shape)
    road = image[horizon:]
    road[:] = 0.35 + rng.normal(0.0, 0.03, size=road.shape)
    cols = np.arange(width)[None, :]
    depth = np.arange(height - horizon)[:, None] + 1
    for lane in (-0.5, 0.0, 0.5):  # lane markings converging to the horizon
        centre = width / 2 + lane * depth * width / max(1, height - horizon)
        mask = np.abs(cols - centre) < 1 + depth * 0.02
        road[mask] = 0.95
    for _ in range(3):  # vehicles on the road
        y = int(rng.integers(horizon, height - 4))
        size = max(3, int((y - horizon) * 0.6))
        x = int(rng.integers(0, max(1, width - size)))
        image[max(horizon, y - size) : y, x : x + size] = rng.uniform(0.0, 1.0, size=3)
    return (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def normalise(images: np.ndarray) -> np.ndarray:
    """[C, H, W, 3] uint8 RGB -> [C, 3, H, W] float32 normalised as Qwen2.5-VL expects."""
    scaled = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - _MEAN) / _STD).transpose(0, 3, 1, 2))


def parity_inputs(shape: tuple[int, int, int, int], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Named [C, 3, H, W] inputs: standard-normal noise and a rendered road scene per camera."""
    cams, _, height, width = shape
    rng = np.random.default_rng(seed)
    scenes = np.stack([road_scene(height, width, seed + 1 + c) for c in range(cams)])
    return {
        "random": rng.standard_normal(shape).astype(np.float32),
        "road_scene": normalise(scenes),
    }


def run_parity(
    reference: object,
    other: object,
    inputs: dict[str, np.ndarray],
    plan: KeepPlan,
    *,
    precision: str = "fp32",
) -> list[ParityCase]:
    """Run both backends (objects with run(pixels) -> EncoderPrunerOutput) on every input."""
    token_tol, tie_floor = tolerances(precision)
    cases = []
    for name, pixels in inputs.items():
        ref = reference.run(pixels)  # type: ignore[attr-defined]
        got = other.run(pixels)  # type: ignore[attr-defined]
        cases.append(compare(name, ref, got, plan, token_tol=token_tol, tie_floor=tie_floor))
    return cases


def parity_table(cases: Iterable[ParityCase], title: str = "export parity (vs torch)") -> object:
    """A rich Table of the cases (print it with rich.console.Console().print)."""
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "input",
        "K",
        "index diffs",
        "flip margin",
        "max |token diff|",
        "max |score diff|",
        "result",
    ):
        table.add_column(column, justify="right" if column != "input" else "left")
    for case in cases:
        result = "[green]ok[/green]" if case.ok else "[red]FAIL[/red]"
        if case.note:
            result += f" ({case.note})"
        table.add_row(
            case.name,
            str(case.kept),
            str(case.index_diffs),
            f"{case.flipped_margin:.2e}",
            f"{case.max_token_diff:.2e}",
            f"{case.max_score_diff:.2e}",
            result,
        )
    return table
