from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fastdrive_ros.transport.node_params import (
    NODE_NAME,
    PARAMS,
    ParamError,
    load_params_yaml,
    render_params_yaml,
    validate_params,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "drive.yaml"


def test_config_yaml_is_generated_from_the_schema() -> None:
    assert CONFIG.read_text(encoding="utf-8") == render_params_yaml(), (
        "config/drive.yaml is out of step with node_params.py: regenerate it with "
        "`python -m fastdrive_ros.transport.node_params > config/drive.yaml`"
    )


def test_config_yaml_loads_and_validates_to_the_defaults() -> None:
    values = load_params_yaml(CONFIG)
    assert set(values) == {p.name for p in PARAMS}
    params = validate_params(values)
    for spec in PARAMS:
        assert getattr(params, spec.name) == spec.default
    config = params.pipeline_config()
    assert config.camera_period_ms == pytest.approx(1000 / 12)
    assert config.anchor == "CAM_FRONT"
    assert params.camera_topic_map()["CAM_BACK"] == "/CAM_BACK/image_rect_compressed"
    pp = params.pipeline_params()
    assert pp.pruner == "reconpruner" and pp.prune_ratio == 0.5 and pp.config == config


def test_every_parameter_is_documented_and_its_default_valid() -> None:
    for spec in PARAMS:
        assert len(spec.description) > 15, spec.name
        assert spec.check(spec.default) == "", spec.name


def test_all_problems_are_listed_at_once() -> None:
    with pytest.raises(ParamError) as info:
        validate_params(
            {
                "prune_ratio": 1.5,
                "backend": "cuda",
                "missing_camera": "guess",
                "camera_topics": ["/a"],
                "max_image_bytes": "big",
                "nonsense": 1,
                "publish_debug": 1,
            }
        )
    text = str(info.value)
    for needle in (
        "prune_ratio must be <= 0.99",
        "backend must be one of",
        "missing_camera must be one of",
        "camera_topics has 1 entries but camera_names has 6",
        "max_image_bytes must be a integer",
        "unknown parameter 'nonsense'",
        "publish_debug must be a bool",
    ):
        assert needle in text, (needle, text)


def test_integers_are_accepted_for_doubles_and_cross_field_rules() -> None:
    assert validate_params({"sync_tolerance_ms": 40}).sync_tolerance_ms == 40.0
    with pytest.raises(ParamError, match="input_width and input_height"):
        validate_params({"input_width": 1600})


def test_yaml_sections(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"pruner": "none"}},
                f"/car/{NODE_NAME}": {"ros__parameters": {"prune_ratio": 0.25}},
                "other_node": {"ros__parameters": {"prune_ratio": 0.9}},
            }
        )
    )
    assert load_params_yaml(path) == {"pruner": "none", "prune_ratio": 0.25}
    assert load_params_yaml(path, node_name="nope") == {"pruner": "none"}  # "/**" fits all
    path.write_text(yaml.safe_dump({"other_node": {"ros__parameters": {"pruner": "none"}}}))
    with pytest.raises(ParamError, match="no section for node 'nope'"):
        load_params_yaml(path, node_name="nope")
    with pytest.raises(ParamError, match="does not exist"):
        load_params_yaml(tmp_path / "missing.yaml")
    path.write_text("fastdrive: [1, 2")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params_yaml(path)
