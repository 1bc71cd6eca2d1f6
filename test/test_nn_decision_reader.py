"""The deployable decision reading: trees as tensors, the corridor in torch, one saved module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train_dense_probe import GRID, _maps

from fastdrive_ros.nn.corridor import CorridorLayout
from fastdrive_ros.nn.decision_reader import CellHead, DecisionReader, minimal_ego
from fastdrive_ros.train.boosted import boosted_fit, tree_ensemble_of
from fastdrive_ros.train.dense_probe import (
    CORRIDOR,
    corridor_features,
    read_cell_maps,
    with_motion,
)
from fastdrive_ros.train.images import NUM_CLASSES

CELLS = GRID[0] * GRID[1]
WIDTH = 8


def test_the_trees_as_tensors_predict_what_scikit_learn_predicts() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values: each split learns where they go
    y = np.nan_to_num(x[:, 0]) * 2 + np.where(np.isnan(x[:, 1]), 3.0, 0.0) + x[:, 2].clip(0, None)
    model = boosted_fit(x, np.nan_to_num(y), trees=40, seed=0)
    trees = tree_ensemble_of(model)
    test = rng.normal(size=(300, 5))
    test[rng.random(test.shape) < 0.1] = np.nan
    ours = trees(torch.from_numpy(test)).numpy()
    assert np.abs(ours - model.predict(test)).max() < 1e-9
    assert trees.trees == model.n_iter_ and trees.depth >= 2
    with pytest.raises(ValueError, match=r"\[B, 5\] features"):
        trees(torch.zeros(2, 4))


def test_categorical_splits_and_unfitted_models_are_refused() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(0, 4, 200), rng.normal(size=200)])
    model = HistGradientBoostingRegressor(max_iter=5, categorical_features=[0]).fit(x, x[:, 0])
    with pytest.raises(ValueError, match="categorical"):
        tree_ensemble_of(model)
    with pytest.raises(ValueError, match="fitted"):
        tree_ensemble_of(HistGradientBoostingRegressor())


def test_the_corridor_layout_survives_a_round_trip() -> None:
    assert CorridorLayout.from_json(CORRIDOR.to_json()) == CORRIDOR
    assert CORRIDOR.feature_count == corridor_features(_maps([[]])).shape[1]


def _fitted(seed: int = 0):
    """A reader on random tokens whose trees read the nearest vehicle share and its motion."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    head = CellHead(WIDTH, NUM_CLASSES).eval()
    tokens = rng.normal(size=(120, CELLS, WIDTH)).astype(np.float32)
    kept = rng.random((120, CELLS)) < 0.6
    previous = np.r_[0, np.arange(119)]  # a chain: each keyframe's predecessor is the row before
    previous[::10] = np.arange(0, 120, 10)  # every tenth has none (its own row)
    ego = np.array([minimal_ego(s, c) for s, c in zip(rng.uniform(0, 15, 120), ["left"] * 120)])
    corridor = corridor_features(read_cell_maps(head, tokens, GRID).masked(kept))
    x = np.hstack([ego, with_motion(corridor, previous)])
    y = x[:, 4] * 10 - x[:, 0] * 0.1 + x[:, 4 + CORRIDOR.feature_count] * 5
    model = boosted_fit(x, y, trees=30, seed=0)
    reader = DecisionReader(
        cells=head, layout=CORRIDOR, grid=GRID, trees=tree_ensemble_of(model)
    ).eval()
    return reader, model, tokens, kept, previous, ego, x


def _run(reader: DecisionReader, tokens, kept, ego, previous=None):
    with torch.no_grad():
        return reader(
            torch.from_numpy(tokens),
            torch.from_numpy(kept),
            torch.from_numpy(ego),
            None if previous is None else torch.as_tensor(previous),
        )


def test_the_reader_reads_what_the_probe_measured() -> None:
    """Tokens + kept + ego + the predecessor's corridor -> the probe's trees' decision."""
    reader, model, tokens, kept, previous, ego, x = _fitted()
    now = reader.corridor(torch.from_numpy(tokens), torch.from_numpy(kept)).detach()
    decision, corridor = _run(reader, tokens, kept, ego, now[previous])
    assert torch.equal(corridor, now)
    assert np.abs(decision.numpy() - model.predict(x)).max() < 1e-9
    # no predecessor (NaN rows, or none at all): no motion, as the probe's own-row convention
    missing = now[previous].clone()
    missing[5] = float("nan")
    alone, _ = _run(reader, tokens, kept, ego, missing)
    own, _ = _run(reader, tokens, kept, ego)
    x_alone = x.copy()
    x_alone[:, 4 + CORRIDOR.feature_count :] = 0
    assert alone[5] == pytest.approx(model.predict(x_alone[5:6])[0], abs=1e-9)
    assert np.abs(own.numpy() - model.predict(x_alone)).max() < 1e-9


def test_dropped_tokens_reach_nothing() -> None:
    reader, _, tokens, kept, _, _, _ = _fitted()
    none_kept = torch.zeros(len(tokens), CELLS, dtype=torch.bool)
    with torch.no_grad():
        empty = reader.corridor(torch.from_numpy(tokens), none_kept)
        changed = torch.from_numpy(tokens) + 100 * ~torch.from_numpy(kept)[..., None]
        same = reader.corridor(changed, torch.from_numpy(kept))
        full = reader.corridor(torch.from_numpy(tokens), torch.from_numpy(kept))
    assert torch.equal(empty, torch.zeros_like(empty))
    assert torch.allclose(same, full)  # what a dropped token held does not matter
    with pytest.raises(ValueError, match=r"\[B, 180, D\]"):
        reader.corridor(torch.zeros(1, 10, WIDTH), torch.ones(1, 10, dtype=torch.bool))


def test_a_saved_reader_reads_the_same_and_a_foreign_file_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    reader, _, tokens, kept, _, ego, _ = _fitted()
    reader.meta = {"train": "tiny", "corr": {"w": 0.5}}
    path = reader.save(tmp_path / "decision_reader.safetensors")
    loaded = DecisionReader.load(path)
    assert torch.equal(_run(loaded, tokens, kept, ego)[0], _run(reader, tokens, kept, ego)[0])
    assert DecisionReader.metadata(path) == loaded.meta == {"train": "tiny", "corr": {"w": 0.5}}
    other = tmp_path / "other" / "x.safetensors"
    other.parent.mkdir()
    save_file({"a": torch.zeros(1)}, str(other), metadata={"format": "something_else"})
    with pytest.raises(ValueError, match="not a fastdrive_ros.decision_reader"):
        DecisionReader.load(other)
    with pytest.raises(FileNotFoundError, match="--save-reader"):
        DecisionReader.load(tmp_path / "missing.safetensors")


def test_a_reader_refuses_trees_fitted_on_other_features() -> None:
    reader, *_ = _fitted()
    model = boosted_fit(np.zeros((50, 3)), np.zeros(50), trees=2, seed=0)
    with pytest.raises(ValueError, match="ego \\+ corridor \\+ motion"):
        DecisionReader(
            cells=reader.cells, layout=CORRIDOR, grid=GRID, trees=tree_ensemble_of(model)
        )


def _with_pace(seed: int = 0):
    """`_fitted`'s reader plus pace trees that read the status' acceleration and the corridor."""
    reader, _, tokens, kept, previous, ego, x = _fitted(seed)
    rng = np.random.default_rng(seed + 1)
    status = np.column_stack([rng.uniform(-3, 2, len(x)), rng.normal(0, 0.1, len(x)),
                              rng.uniform(-3, 2, len(x))])  # fmt: skip
    xs = np.hstack([x, status])
    y = status[:, 0] + 4 * x[:, 4]
    model = boosted_fit(xs, y, trees=30, seed=0)
    paced = DecisionReader(
        cells=reader.cells, layout=CORRIDOR, grid=GRID, trees=reader.trees,
        pace=tree_ensemble_of(model),
    ).eval()  # fmt: skip
    return paced, model, tokens, kept, previous, ego, status, xs


def test_the_pace_reads_the_full_status_and_nothing_for_the_minimal_one() -> None:
    reader, model, tokens, kept, previous, ego, status, xs = _with_pace()
    with torch.no_grad():
        now = reader.corridor(torch.from_numpy(tokens), torch.from_numpy(kept))
        before = now[previous]
        _, corridor = _run(reader, tokens, kept, ego, before)
        minimal = torch.from_numpy(status).clone()
        minimal[::3] = float("nan")  # every third sample has the minimal status
        pace = reader.read_pace(torch.from_numpy(ego), minimal, corridor, before)
    full = ~np.isnan(minimal.numpy()).any(axis=1)
    assert np.abs(pace.numpy()[full] - model.predict(xs[full])).max() < 1e-9
    assert torch.isnan(pace[::3]).all() and full.sum() == len(xs) - len(xs[::3])
    # the status moves the pace: what the trees were taught (acceleration + 4 x a corridor share)
    assert np.corrcoef(pace.numpy()[full], status[full, 0])[0, 1] > 0.5
    # a reader without pace trees reads none
    plain, *_ = _fitted()
    with torch.no_grad():
        none = plain.read_pace(torch.from_numpy(ego), torch.from_numpy(status), corridor)
    assert torch.isnan(none).all()


def test_a_saved_reader_keeps_its_pace_and_an_older_file_still_loads(tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    reader, _, tokens, kept, _, ego, status, _ = _with_pace()
    path = reader.save(tmp_path / "paced" / "decision_reader.safetensors")
    loaded = DecisionReader.load(path)
    assert loaded.pace is not None
    with torch.no_grad():
        _, corridor = _run(reader, tokens, kept, ego)
        args = (torch.from_numpy(ego), torch.from_numpy(status), corridor)
        assert torch.equal(loaded.read_pace(*args), reader.read_pace(*args))
    # a version-1 file (before pace trees) loads as a reader without them
    plain, *_ = _fitted()
    saved = plain.save(tmp_path / "plain" / "decision_reader.safetensors")
    with safe_open(str(saved), framework="pt") as handle:
        header, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={**header, "version": "1"})
    assert DecisionReader.load(old).pace is None
    save_file(tensors, str(old), metadata={**header, "version": "9"})
    with pytest.raises(ValueError, match="of version 1, 2"):
        DecisionReader.load(old)


def test_pace_trees_fitted_on_other_features_are_refused() -> None:
    reader, *_ = _fitted()
    wrong = tree_ensemble_of(boosted_fit(np.zeros((50, 3)), np.zeros(50), trees=2, seed=0))
    with pytest.raises(ValueError, match="pace trees read 3 features"):
        DecisionReader(cells=reader.cells, layout=CORRIDOR, grid=GRID, trees=reader.trees,
                       pace=wrong)  # fmt: skip
