"""Training data: token-cell targets, keyframe records, the token cache and stage A (vision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from train_tiny import IMAGE_SIZE, tiny_bundle

from fastdrive_ros.data.layout import encode_inverse_depth
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.images import (
    NUM_CLASSES,
    cell_colours,
    cell_depth,
    cell_fraction,
    class_histograms,
)
from fastdrive_ros.train.loop import TrainConfig
from fastdrive_ros.train.records import load_records, save_records
from fastdrive_ros.train.token_cache import TokenCache, build_token_cache, module_hash
from fastdrive_ros.train.vision import CameraImageDataset, pretrain_vision, vision_loss


def test_cell_targets_on_a_hand_made_map() -> None:
    classes = np.zeros((56, 84), dtype=np.uint8)
    classes[:28, :28] = 9  # vehicle fills cell 0
    classes[28:, 28:42] = 6  # road fills half of cell 4
    hist = class_histograms(classes, 28)
    assert hist.shape == (6, NUM_CLASSES)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    assert hist[0, 9] == 1.0 and hist[4, 6] == pytest.approx(0.5) and hist[4, 0] == 0.5
    mask = (classes == 9).astype(np.uint8) * 255
    np.testing.assert_allclose(cell_fraction(mask, 28), [1, 0, 0, 0, 0, 0])
    rgb = torch.zeros(3, 56, 84)
    rgb[0, :14, :14] = 1.0  # red top-left half-cell of cell 0
    colours = cell_colours(rgb, 28)
    assert colours.shape == (6, 12) and float(colours[0, 0]) == 1.0 and float(colours[0, 3]) == 0
    with pytest.raises(ValueError, match="outside SEMANTIC_CLASSES"):
        class_histograms(np.full((28, 28), 99, np.uint8), 28)
    with pytest.raises(ValueError, match="multiple of the 28-px"):
        cell_fraction(np.zeros((30, 28)), 28)


def test_inverse_depth_encoding_and_cell_targets() -> None:
    depth = np.full((28, 56), np.inf, dtype=np.float32)  # sky everywhere
    depth[20:, :28] = 10.0  # road 10 m away in the bottom of cell 0
    depth[27, 3] = 1.0  # one pixel nearer than DEPTH_NEAR_M saturates
    depth[:, 28:] = 20.0  # cell 1: a wall at 20 m
    encoded = encode_inverse_depth(depth)
    assert encoded.dtype == np.uint8 and encoded[0, 0] == 0  # sky
    assert encoded[21, 0] == 51 and encoded[27, 3] == 255 and encoded[0, 30] == 26
    cells = cell_depth(encoded, 28)
    assert cells.shape == (2, 2)
    assert cells[0, 1] == pytest.approx(1.0)  # max keeps the nearest point
    assert cells[0, 0] == pytest.approx((8 * 28 * 51 + 255 - 51) / 255 / 784, rel=1e-5)
    np.testing.assert_allclose(cells[1], [26 / 255, 26 / 255], rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of the 28-px"):
        cell_depth(np.zeros((30, 28), np.uint8), 28)


def test_records_round_trip_through_json(records, tmp_path: Path) -> None:
    assert len(records) > 0
    first = records[0]
    assert len(first.images) == 6 and all(Path(p).is_file() for p in first.images)
    labels = first.fg_masks + first.class_maps + first.depth_maps
    assert len(first.depth_maps) == 6  # the synthetic world writes the renderer's depth
    assert all(m is not None and Path(m).is_file() for m in labels)
    path = save_records(records, tmp_path / "r.json", dataroot="x")
    back, meta = load_records(path)
    assert meta == {"dataroot": "x"} and len(back) == len(records)
    np.testing.assert_allclose(back[0].future_xy, first.future_xy, atol=1e-4)
    np.testing.assert_allclose(back[0].ego.history_xy, first.ego.history_xy, atol=1e-4)
    assert back[0].ego.command == first.ego.command
    assert back[0].depth_maps == first.depth_maps
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a fastdrive_ros training-records"):
        load_records(tmp_path / "bad.json")


def test_records_written_by_many_ranks_at_once_stay_whole(records, tmp_path: Path) -> None:
    """Every torchrun rank saves the same records file; a shared temp name made one rank fail."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "shared.json"
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [pool.submit(save_records, records, path, rank=k % 4) for k in range(32)]
        assert all(job.result() == path for job in jobs)
    back, meta = load_records(path)
    assert len(back) == len(records) and meta["rank"] in range(4)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temp file left behind


def test_token_cache_matches_the_encoder_and_is_rebuilt_for_another(
    records, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from fastdrive_ros.train.images import load_pixels

    vla = VLA.from_pretrained(tiny_bundle(tmp_path_factory))
    cache = build_token_cache(
        encoder=vla.vision, records=records, image_size=IMAGE_SIZE, folder=tmp_path, shard_size=2
    )
    assert len(cache) == len(records) and cache.total_tokens == 36
    with torch.no_grad():
        expected = vla.vision(load_pixels(records[-1].images, IMAGE_SIZE)).tokens
    torch.testing.assert_close(
        cache.tokens(len(records) - 1).float(), expected, atol=2e-3, rtol=2e-3
    )
    fraction = cache.fg_fraction(0).float()
    assert fraction.shape == (36,) and 0 <= float(fraction.min()) <= float(fraction.max()) <= 1
    # reopening is free; another encoder's weights rebuild it
    again = build_token_cache(
        encoder=vla.vision, records=records, image_size=IMAGE_SIZE, folder=tmp_path, shard_size=2
    )
    assert again.spec == cache.spec
    old_hash = module_hash(vla.vision)
    with torch.no_grad():
        next(vla.vision.parameters()).add_(1.0)
    rebuilt = build_token_cache(
        encoder=vla.vision, records=records, image_size=IMAGE_SIZE, folder=tmp_path, shard_size=2
    )
    assert rebuilt.spec.encoder_hash != old_hash
    assert not torch.equal(rebuilt.tokens(0), cache.tokens(0))
    with pytest.raises(FileNotFoundError, match="not a complete token cache"):
        TokenCache(tmp_path / "nothing")


def test_stage_a_dataset_crops_on_the_token_grid(records) -> None:
    data = CameraImageDataset(records=records, image_size=IMAGE_SIZE, unit=28, crop=(28, 56))
    item = data[0]
    assert item["pixels"].shape == (3, 28, 56)
    assert item["classes"].shape == (2, NUM_CLASSES) and item["colours"].shape == (2, 12)
    torch.testing.assert_close(item["classes"].sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="multiples of 28"):
        CameraImageDataset(records=records, image_size=IMAGE_SIZE, unit=28, crop=(30, 56))


def test_stage_a_learns_token_classes(records, tmp_path_factory, tmp_path: Path) -> None:
    vla = VLA.from_pretrained(tiny_bundle(tmp_path_factory))
    before = {k: v.clone() for k, v in vla.vision.state_dict().items()}
    summary = pretrain_vision(
        encoder=vla.vision,
        train_records=records,
        val_records=records[:2],
        image_size=IMAGE_SIZE,
        out_dir=tmp_path,
        config=TrainConfig(epochs=3, batch_size=8, lr=3e-3, seed=0),
        max_val_images=6,
        progress=False,
    )
    first, last = summary.val_history[0], summary.val_history[-1]
    assert last["val_class_ce"] < first["val_class_ce"] or last["val_loss"] < first["val_loss"]
    after = vla.vision.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # best weights loaded back
    data = CameraImageDataset(records=records, image_size=IMAGE_SIZE, unit=28)
    from fastdrive_ros.train.vision import VisionAuxModel, collate_images

    loss, metrics = vision_loss(
        VisionAuxModel(encoder=vla.vision), collate_images([data[0], data[1]])
    )
    assert torch.isfinite(loss) and 0 <= metrics["class_acc"] <= 1
    assert data.with_depth and data[0]["depth"].shape == (data[0]["classes"].shape[0], 2)
    assert metrics["depth_mse"] > 0 and "val_depth_mse" in last  # the tower learns depth too
