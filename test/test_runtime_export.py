"""Export of the real (tiny, random) Qwen2.5-VL tower + ReconPruner: graph, metadata, parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fastdrive_ros.runtime.backend_select import expected_export  # noqa: E402
from fastdrive_ros.runtime.errors import ModelFileError  # noqa: E402
from fastdrive_ros.runtime.export_job import export_and_check  # noqa: E402
from fastdrive_ros.runtime.keep_plan import plan_keep  # noqa: E402
from fastdrive_ros.runtime.onnx_meta import METADATA_KEY, read_export  # noqa: E402
from fastdrive_ros.runtime.ort_backend import OrtBackend  # noqa: E402
from fastdrive_ros.runtime.parity import parity_inputs  # noqa: E402
from fastdrive_ros.runtime.torch_backend import TorchBackend  # noqa: E402

support = pytest.importorskip("test_runtime_support")
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def parts():
    return support.make_real_parts(cameras=2, image_size=(112, 196))


@pytest.fixture(scope="module")
def exported(parts, tmp_path_factory):
    from rich.console import Console

    out = tmp_path_factory.mktemp("export") / "encoder_pruner.onnx"
    return export_and_check(parts, out, prune_ratio=0.5, console=Console(quiet=True))


def test_graph_io_and_metadata(parts, exported) -> None:
    model = onnx.load(str(exported.export.path))
    assert [i.name for i in model.graph.input] == ["pixels"]
    assert [o.name for o in model.graph.output] == ["kept_tokens", "kept_index", "scores"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 20
    props = {p.key: p.value for p in model.metadata_props}
    n = 2 * 4 * 7  # two cameras of 112x196 -> 4x7 merged tokens each
    assert props["fastdrive.N"] == str(n) and props["fastdrive.K"] == str(n // 2)
    assert (props["fastdrive.C"], props["fastdrive.H"], props["fastdrive.W"]) == (
        "2",
        "112",
        "196",
    )
    assert props["fastdrive.D"] == "64" and props["fastdrive.budget"] == "global"
    assert props["fastdrive.model_hash"] == parts.model_hash()
    assert json.loads(props[METADATA_KEY])["exporter"] == "dynamo"
    dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert dims == [[n // 2, 64], [n // 2], [n]]


def test_every_topk_is_sorted_with_constant_small_k_and_float_input(exported) -> None:
    findings = exported.export.findings
    assert not [f for f in findings if f.level == "error"]
    topks = [f for f in findings if f.code == "topk"]
    assert len(topks) == 2  # the selection and the ascending sort of the kept indices
    assert all("K=28 sorted" in f.message for f in topks)


def test_parity_is_exact_on_random_and_scene_input(exported) -> None:
    assert exported.ok and {c.name for c in exported.parity} == {"random", "road_scene"}
    for case in exported.parity:
        assert case.index_diffs == 0
        assert case.max_token_diff < 1e-4 and case.max_score_diff < 1e-4
    sidecar = json.loads(exported.export.sidecar.read_text())
    assert sidecar["parity"]["ok"] is True
    assert sidecar["onnx_sha256"] == exported.export.content_hash


def test_onnxruntime_backend_output_contract(parts, exported) -> None:
    info = read_export(exported.export.path)
    pixels = parity_inputs(parts.input_shape, seed=3)["road_scene"]
    with OrtBackend(onnx_path=info.path, threads=2) as ort:
        out = ort.run(torch.from_numpy(pixels))
        options = ort._session.get_session_options()
    # idle ORT threads sleep instead of spinning over the planner that runs next
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert out.kept_tokens.shape == (28, 64) and out.kept_tokens.dtype == torch.float32
    assert out.kept_index.dtype == torch.int64
    assert bool((out.kept_index[1:] > out.kept_index[:-1]).all())
    assert out.grid_thw.tolist() == [[1, 8, 14], [1, 8, 14]]
    assert set(out.timings_ms) == {"encode_prune"}
    reference = TorchBackend(
        parts=parts, selector=parts.pruner, keep=info.metadata.plan.selector_keep, device="cpu"
    ).run(pixels)
    assert torch.equal(reference.grid_thw, out.grid_thw)
    assert set(reference.timings_ms) == {"encode", "prune"}
    np.testing.assert_array_equal(reference.kept_index.numpy(), out.kept_index.numpy())


def test_wrong_frame_shape_is_a_clear_error(exported) -> None:
    with OrtBackend(onnx_path=exported.export.path) as ort:
        with pytest.raises(ValueError, match=r"\[2, 3, 112, 196\]"):
            ort.run(np.zeros((1, 3, 112, 196), dtype=np.float32))


def test_export_from_other_weights_or_budget_is_refused(parts, exported) -> None:
    info = read_export(exported.export.path)
    plan = info.metadata.plan
    expected_export(info, parts, "reconpruner", plan)  # matches: no error
    other = support.make_real_parts(cameras=2, image_size=(112, 196), seed=7)
    with pytest.raises(ModelFileError, match="other weights") as err:
        expected_export(info, other, "reconpruner", plan)
    assert "fastdrive export" in str(err.value)
    wider = plan_keep(selector="reconpruner", cameras=2, tokens_per_camera=28, prune_ratio=0.25)
    with pytest.raises(ModelFileError, match="K=28"):
        expected_export(info, parts, "reconpruner", wider)


def test_edited_onnx_no_longer_matches_its_sidecar(exported, tmp_path: Path) -> None:
    copy = tmp_path / exported.export.path.name
    copy.write_bytes(exported.export.path.read_bytes())
    (tmp_path / exported.export.sidecar.name).write_text(exported.export.sidecar.read_text())
    read_export(copy)  # an identical copy is fine
    model = onnx.load(str(copy))
    model.producer_version = "edited"
    onnx.save(model, str(copy))
    with pytest.raises(ModelFileError, match="content hash"):
        read_export(copy)


def test_benchmark_runs_all_three_paths(parts, exported) -> None:
    from fastdrive_ros.runtime.bench import bench_backends, bench_table

    result = bench_backends(parts, exported.export.path, runs=1, threads=1, warmup=0)
    assert result.torch_ms > 0 and result.twin_ms > 0 and result.ort_ms > 0
    assert result.kept == 28 and result.tokens == 56
    assert result.to_dict()["speedup"] == pytest.approx(result.torch_ms / result.ort_ms)
    assert bench_table(result).row_count == 3
