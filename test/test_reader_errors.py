"""Broken datasets give a DatasetError that names the file at fault (hand-made tiny tables)."""

from __future__ import annotations

import json
import shutil

import pytest
from nusc_tiny import write_tiny_nuscenes

from fastdrive_ros.data.errors import DatasetError
from fastdrive_ros.data.reader import NuScenesReader
from fastdrive_ros.data.splits import hash_split, split_scenes

VERSION = "v1.0-tiny"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_tiny_nuscenes(tmp_path_factory.mktemp("pristine"), masks=True)


@pytest.fixture
def copy(pristine, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(pristine, dst)
    return dst


def test_missing_dataroot(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        NuScenesReader(dataroot=tmp_path / "nope", version=VERSION)


def test_version_mismatch_names_the_folders_found(pristine):
    with pytest.raises(DatasetError, match=r"v1\.0-mini not found.*v1\.0-tiny"):
        NuScenesReader(dataroot=pristine, version="v1.0-mini")


def test_missing_table(copy):
    (copy / VERSION / "ego_pose.json").unlink()
    with pytest.raises(DatasetError, match=r"ego_pose\.json is missing"):
        NuScenesReader(dataroot=copy, version=VERSION)


def test_malformed_json_names_the_table(copy):
    (copy / VERSION / "sample.json").write_text('[{"token": "x",', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"sample\.json is not valid JSON"):
        NuScenesReader(dataroot=copy, version=VERSION)


def test_record_missing_a_field(copy):
    path = copy / VERSION / "sample_data.json"
    records = json.loads(path.read_text())
    del records[3]["calibrated_sensor_token"]
    path.write_text(json.dumps(records))
    with pytest.raises(DatasetError, match=r"sample_data\.json: record 3 lacks.*calibrated"):
        NuScenesReader(dataroot=copy, version=VERSION)


@pytest.mark.parametrize(
    ("table", "field", "value"),
    [
        ("ego_pose", "translation", "oops"),
        ("calibrated_sensor", "rotation", [1, 0, 0]),
        ("sample_annotation", "size", [1.0, "wide", 2.0]),
    ],
)
def test_a_bad_number_in_a_table_names_the_table(copy, table, field, value):
    """Issue 11: `"translation": "oops"` gave numpy's message without the file's name."""
    path = copy / VERSION / f"{table}.json"
    records = json.loads(path.read_text())
    for record in records:  # every record: whichever one the reader meets first is bad
        record[field] = value
    path.write_text(json.dumps(records))
    with pytest.raises(DatasetError, match=rf"table {table}\.json: record .* has {field} = "):
        reader = NuScenesReader(dataroot=copy, version=VERSION, with_map=False)
        reader[0]


def test_missing_image_is_reported_lazily(copy):
    reader = NuScenesReader(dataroot=copy, version=VERSION, with_map=False)
    victim = reader[0].cameras[2].path
    victim.unlink()
    with pytest.raises(DatasetError, match=str(victim.name)):
        reader[0]
    reader[1]  # other samples still load


def test_missing_mask(copy):
    reader = NuScenesReader(dataroot=copy, version=VERSION, with_map=False)
    mask = reader[0].cameras[0].fg_mask
    mask.unlink()
    assert reader[0].cameras[0].fg_mask is None
    strict = NuScenesReader(dataroot=copy, version=VERSION, with_map=False, require_masks=True)
    with pytest.raises(DatasetError, match="fastdrive masks"):
        strict[0]


def test_missing_map_expansion(copy):
    (copy / "maps" / "expansion" / "boston-seaport.json").unlink()
    with pytest.raises(DatasetError, match=r"boston-seaport\.json is missing"):
        NuScenesReader(dataroot=copy, version=VERSION)
    NuScenesReader(dataroot=copy, version=VERSION, with_map=False)  # fine without maps


def test_unknown_scene_lists_valid_ones(pristine):
    reader = NuScenesReader(dataroot=pristine, version=VERSION, with_map=False)
    with pytest.raises(DatasetError, match="valid scenes: scene-0001"):
        reader.samples_of_scene("scene-9999")


def test_official_version_with_foreign_scenes(copy):
    shutil.move(copy / VERSION, copy / "v1.0-mini")
    # scene-0001 is in the official trainval lists but not in mini
    with pytest.raises(DatasetError, match="version mismatch"):
        NuScenesReader(dataroot=copy, version="v1.0-mini", split="val", with_map=False)


def test_bad_arguments(pristine):
    with pytest.raises(ValueError, match="split"):
        NuScenesReader(dataroot=pristine, version=VERSION, split="test")  # type: ignore[arg-type]
    reader = NuScenesReader(dataroot=pristine, version=VERSION, with_map=False)
    with pytest.raises(IndexError):
        reader[len(reader)]
    with pytest.raises(ValueError, match="with_map=False"):
        reader.location_map("boston-seaport")


def test_hash_split_is_stable_and_never_empty():
    names = [f"scene-{i:04d}" for i in range(200)]
    split = hash_split(names)
    assert set(split["train"]) | set(split["val"]) == set(names)
    assert not set(split["train"]) & set(split["val"])
    assert 0.1 < len(split["val"]) / len(names) < 0.3
    # a scene keeps its side when others are added
    more = hash_split(names + [f"scene-{i:04d}" for i in range(200, 400)])
    assert set(split["val"]) <= set(more["val"])
    for n in (2, 3):
        few = hash_split(names[:n])
        assert few["val"] and few["train"]
    assert split_scenes("v1.0-synth", names[:1], "val") in ([], names[:1])
    assert split_scenes("v1.0-synth", names, "all") == names


def test_official_mini_split():
    names = ["scene-0061", "scene-0103", "scene-0553", "scene-0655", "scene-0757", "scene-0796",
             "scene-0916", "scene-1077", "scene-1094", "scene-1100"]  # fmt: skip
    assert split_scenes("v1.0-mini", names, "val") == ["scene-0103", "scene-0916"]
    assert len(split_scenes("v1.0-mini", names, "train")) == 8
