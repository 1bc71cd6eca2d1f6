"""Stage A2: the world's scene labels, the front-frame dataset and the affordance fine-tune."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from train_tiny import IMAGE_SIZE, VERSION, tiny_bundle

from fastdrive_ros.data.world_labels import LEAD_KINDS, read_scene_labels, read_worlds_labels
from fastdrive_ros.nn.configs import tiny_config
from fastdrive_ros.nn.scene_reader import MotionHead, SceneHead
from fastdrive_ros.nn.vla import VLA
from fastdrive_ros.train.affordance import (
    FRONT_CAMERA,
    FrontFrameDataset,
    VisionAffordanceModel,
    affordance_loss,
    closing_speed,
    finetune_affordances,
    inverse_gap,
)
from fastdrive_ros.train.loop import TrainConfig
from fastdrive_ros.train.records import sample_chain
from fastdrive_ros.train.vision import collate_images


def _scene_file(root: Path, frames: list[dict]) -> Path:
    folder = root / "synth" / "scenes"
    folder.mkdir(parents=True)
    path = folder / "scene-0001.json"
    path.write_text(json.dumps({"keyframes": frames}))
    return path


def test_scene_labels_group_the_worlds_constraints(tmp_path: Path) -> None:
    _scene_file(
        tmp_path,
        [
            {"sample_token": "a", "lead": "static", "gap_m": 12.5, "lead_speed": 0.0,
             "decided_acceleration": -2.5},
            {"sample_token": "b", "lead": "zebra", "gap_m": 4.0, "lead_speed": 1.2,
             "decided_acceleration": -6.0},
            {"sample_token": "c", "lead": "none", "gap_m": None, "decided_acceleration": 0.8},
            {"sample_token": "d", "lead": "red_light", "gap_m": 30.0},  # an older world
            {"sample_token": "e", "lead": "none", "gap_m": 80.0, "lead_speed": 9.0},
        ],
    )  # fmt: skip
    labels = read_scene_labels(tmp_path)
    assert [(labels[t].kind, labels[t].gap_m, labels[t].lead_speed) for t in "abcde"] == [
        ("vehicle", 12.5, 0.0),
        ("pedestrian", 4.0, 1.2),
        ("none", math.inf, 0.0),
        ("red_light", 30.0, 0.0),
        ("none", math.inf, 0.0),  # a gap or a speed without a lead: none
    ]
    assert [labels[t].decided_acceleration for t in "abc"] == [-2.5, -6.0, 0.8]
    assert math.isnan(labels["d"].decided_acceleration)  # not recorded: NaN, not 0
    assert read_scene_labels(tmp_path / "nuscenes") == {}  # a dataset without the world's record


def test_an_unknown_constraint_names_the_file(tmp_path: Path) -> None:
    path = _scene_file(tmp_path, [{"sample_token": "a", "lead": "moose", "gap_m": 3.0}])
    with pytest.raises(ValueError, match=f"{path}.*moose"):
        read_scene_labels(tmp_path)


def test_several_worlds_labels_join_and_one_world_twice_is_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "train", tmp_path / "train2"
    _scene_file(first, [{"sample_token": "a", "lead": "vehicle", "gap_m": 9.0}])
    _scene_file(second, [{"sample_token": "b", "lead": "cyclist", "gap_m": 6.0}])
    labels = read_worlds_labels([first, second])
    assert {t: labels[t].kind for t in labels} == {"a": "vehicle", "b": "cyclist"}
    with pytest.raises(ValueError, match=f"{first}.*shares 1 sample tokens.*once"):
        read_worlds_labels([first, second, first])


def test_inverse_gap_is_bounded_and_finest_near() -> None:
    assert [inverse_gap(g) for g in (2.0, 5.0, 10.0, 50.0, math.inf)] == [1.0, 1.0, 0.5, 0.1, 0.0]
    assert inverse_gap(0.0) == 1.0  # touching


def test_affordance_head_puts_its_gradient_on_the_tokens() -> None:
    head = SceneHead(16)
    tokens = torch.randn(3, 7, 16, requires_grad=True)
    speed = torch.tensor([0.0, 5.0, 15.0])
    facts, _ = head(tokens, speed)
    logits, gap, decision = facts.kind_logits, facts.inverse_gap, facts.decision
    assert logits.shape == (3, len(LEAD_KINDS)) and gap.shape == decision.shape == (3,)
    assert ((gap > 0) & (gap < 1)).all()
    (logits.sum() + gap.sum() + decision.sum()).backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0
    # the decision depends on the speed, the image facts do not
    again, _ = head(tokens.detach(), torch.tensor([9.0, 1.0, 3.0]))
    torch.testing.assert_close(again.kind_logits, logits.detach())
    assert not torch.allclose(again.decision, decision.detach())


def test_the_motion_head_reads_what_changed_between_the_frames() -> None:
    torch.manual_seed(0)
    head = MotionHead(16)
    tokens = torch.randn(3, 7, 16, requires_grad=True)
    previous = torch.randn(3, 7, 16, requires_grad=True)
    speed = torch.tensor([0.0, 5.0, 15.0])
    moved = head(tokens, previous, speed)
    assert moved.closing_speed.shape == moved.decision.shape == (3,)
    (moved.closing_speed.sum() + moved.decision.sum()).backward()
    assert tokens.grad.abs().sum() > 0 and previous.grad.abs().sum() > 0  # both frames train
    still = head(tokens.detach(), tokens.detach(), speed)  # no motion
    assert not torch.allclose(still.closing_speed, moved.closing_speed.detach())


def test_two_frame_items_pair_each_keyframe_with_the_one_before(records, world: Path) -> None:
    labels = read_scene_labels(world)
    chain = sample_chain(world, VERSION)
    data = FrontFrameDataset(
        records=records, labels=labels, image_size=IMAGE_SIZE, unit=28, chain=chain
    )
    by_token = {r.token: i for i, r in enumerate(data.records)}
    firsts = [k for k, (i, _) in enumerate(data.items) if data.records[i].token not in chain]
    later = [k for k, (i, _) in enumerate(data.items) if data.records[i].token in chain]
    assert firsts and later
    for k in (firsts[0], later[0]):
        i = data.items[k][0]
        record, item = data.records[i], data[k]
        before = by_token.get(chain.get(record.token, ""), i)
        expected = data[[j for j, (r, _) in enumerate(data.items) if r == before][0]]["pixels"]
        torch.testing.assert_close(item["previous"], expected)
        label = labels[record.token]
        want = closing_speed(label, record.ego.speed)
        assert math.isnan(float(item["closing_speed"])) == math.isnan(want)
        if not math.isnan(want):
            assert float(item["closing_speed"]) == pytest.approx(want, abs=1e-5)
    assert (
        "previous"
        not in FrontFrameDataset(records=records, labels=labels, image_size=IMAGE_SIZE, unit=28)[0]
    )  # one frame unless asked
    nothing = type(labels[records[0].token])("none", math.inf)
    assert math.isnan(closing_speed(nothing, 9.0))  # nothing binds: no target, not 0 or 9


def test_the_motion_terms_join_the_loss_only_with_two_frames(records, world: Path) -> None:
    labels = read_scene_labels(world)
    chain = sample_chain(world, VERSION)
    data = FrontFrameDataset(
        records=records, labels=labels, image_size=IMAGE_SIZE, unit=28, chain=chain
    )
    batch = collate_images([data[k] for k in range(4)])
    model = VisionAffordanceModel(encoder=VLA.build(tiny_config(), seed=0).vision, motion=True)
    loss, metrics = affordance_loss(model, batch)
    assert "motion_decision_mae" in metrics and torch.isfinite(loss)
    batch["closing_speed"] = torch.full_like(batch["closing_speed"], math.nan)  # nothing binds
    loss, metrics = affordance_loss(model, batch)
    assert torch.isfinite(loss) and "closing_speed_mae" not in metrics
    one_frame = {k: v for k, v in batch.items() if k not in ("previous", "closing_speed")}
    _, metrics = affordance_loss(model, one_frame)
    assert "motion_decision_mae" not in metrics and "decision_mae" in metrics


def test_the_decision_term_counts_only_where_recorded(records, world: Path) -> None:
    labels = read_scene_labels(world)
    data = FrontFrameDataset(records=records, labels=labels, image_size=IMAGE_SIZE, unit=28)
    batch = collate_images([data[0], data[1]])
    model = VisionAffordanceModel(encoder=VLA.build(tiny_config(), seed=0).vision)
    _, metrics = affordance_loss(model, batch)
    assert metrics["decision_mae"] >= 0
    batch["decision"] = torch.full_like(batch["decision"], math.nan)  # a world without decisions
    loss, metrics = affordance_loss(model, batch)
    assert torch.isfinite(loss) and "decision_mae" not in metrics


def test_front_frames_carry_their_keyframes_labels(records, world: Path) -> None:
    labels = read_scene_labels(world)
    assert {r.token for r in records} <= set(labels)  # the world labels every keyframe
    data = FrontFrameDataset(records=records, labels=labels, image_size=IMAGE_SIZE, unit=28)
    assert len(data) == len(records)  # one front image per keyframe, no other camera
    for index in (0, len(data) - 1):
        i, camera = data.items[index]
        assert data.records[i].cameras[camera] == FRONT_CAMERA
        item = data[index]
        label = labels[data.records[i].token]
        assert LEAD_KINDS[int(item["lead"])] == label.kind
        assert float(item["inverse_gap"]) == pytest.approx(inverse_gap(label.gap_m))
        assert float(item["speed"]) == pytest.approx(data.records[i].ego.speed)
        assert float(item["decision"]) == pytest.approx(label.decided_acceleration, abs=1e-5)
        assert item["pixels"].shape == (3, *IMAGE_SIZE)  # whole images, not crops
    assert len(FrontFrameDataset(records=records, labels=labels, image_size=IMAGE_SIZE, unit=28,
                                 limit=2)) == 2  # fmt: skip
    with pytest.raises(ValueError, match="labelled"):
        FrontFrameDataset(records=records, labels={}, image_size=IMAGE_SIZE, unit=28)


@pytest.mark.parametrize("two_frames", [False, True])
def test_stage_a2_fits_the_labels_into_the_tower(
    records, world, tmp_path_factory, tmp_path, two_frames: bool
) -> None:
    vla = VLA.from_pretrained(tiny_bundle(tmp_path_factory))
    before = {k: v.clone() for k, v in vla.vision.state_dict().items()}
    labels = read_scene_labels(world)
    chain = sample_chain(world, VERSION) if two_frames else None
    summary = finetune_affordances(
        encoder=vla.vision,
        train_records=records,
        val_records=records,  # the same frames: the loss must fall where it was fitted
        train_labels=labels,
        val_labels=labels,
        image_size=IMAGE_SIZE,
        out_dir=tmp_path,
        config=TrainConfig(epochs=4, batch_size=4, lr=3e-3, seed=0),
        train_chain=chain,
        val_chain=chain,
        progress=False,
    )
    first, last = summary.val_history[0], summary.val_history[-1]
    assert last["val_lead_ce"] < first["val_lead_ce"]
    assert {"val_class_ce", "val_inverse_gap_mae", "val_lead_acc", "val_decision_mae"} <= set(last)
    assert ("val_motion_decision_mae" in last) == two_frames  # the MotionHead trains with chains
    if two_frames:
        assert last["val_motion_decision_mae"] < first["val_motion_decision_mae"]
    after = vla.vision.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
