"""The records cache (train/records.records_for) follows the dataset it was read from."""

from __future__ import annotations

from pathlib import Path

from fastdrive_ros.data.synth import generate_dataset
from fastdrive_ros.train.records import records_for

VERSION = "v1.0-synth"


def _world(root: Path, scenes: int) -> None:
    generate_dataset(root, scenes=scenes, seconds=4.0, seed=8, image_size=(64, 36), sweeps=False,
                     progress=False, town_grid=2, overwrite=True)  # fmt: skip


def test_a_world_regenerated_in_place_is_read_again(tmp_path: Path) -> None:
    root, cache = tmp_path / "world", tmp_path / "records.json"

    def read() -> list:
        return records_for(
            dataroot=root, version=VERSION, split="all", cache=cache, progress=False
        )

    _world(root, scenes=1)
    one = read()
    written = cache.stat().st_mtime_ns
    assert [r.token for r in read()] == [r.token for r in one]  # same tables: from the cache
    assert cache.stat().st_mtime_ns == written
    _world(root, scenes=2)  # the build grows a held-out world under the same folder
    two = read()
    assert len({r.scene for r in two}) == 2 and len(two) > len(one)
    assert {r.token for r in one} <= {r.token for r in two}  # scenes: functions of (seed, index)
