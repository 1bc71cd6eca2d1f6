"""The TensorRT lint on hand-made ONNX graphs: each rule fires on its violation and only then."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fastdrive_ros.runtime.onnx_lint import errors, lint_onnx  # noqa: E402


def topk_model(
    *,
    k: int = 8,
    n: int = 16,
    sorted_attr: int | None = 1,
    k_constant: bool = True,
    dtype: int = TensorProto.FLOAT,
    opset: int = 20,
    extra_node: onnx.NodeProto | None = None,
    dynamic_input: bool = False,
) -> onnx.ModelProto:
    dims: list = ["n"] if dynamic_input else [n]
    inputs = [helper.make_tensor_value_info("x", dtype, dims)]
    initializers = []
    if k_constant:
        initializers.append(numpy_helper.from_array(np.array([k], dtype=np.int64), "k"))
    else:
        inputs.append(helper.make_tensor_value_info("k", TensorProto.INT64, [1]))
    attrs = {} if sorted_attr is None else {"sorted": sorted_attr}
    nodes = [helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk", **attrs)]
    if extra_node is not None:
        nodes.append(extra_node)
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [
            helper.make_tensor_value_info("values", dtype, [k]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, [k]),
        ],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def codes(model: onnx.ModelProto, level: str = "error") -> set[str]:
    return {f.code for f in lint_onnx(model) if f.level == level}


def test_clean_graph_has_no_errors_and_reports_k() -> None:
    findings = lint_onnx(topk_model(k=8))
    assert not errors(findings)
    assert any(f.code == "topk" and "K=8" in f.message for f in findings)


def test_unsorted_topk_is_an_error() -> None:
    assert "topk-unsorted" in codes(topk_model(sorted_attr=0))
    assert "topk-unsorted" not in codes(topk_model(sorted_attr=None))  # spec default is 1


def test_k_at_the_tensorrt_limit_is_an_error() -> None:
    assert "topk-k-limit" in codes(topk_model(k=3840, n=5000))
    assert "topk-k-limit" not in codes(topk_model(k=3839, n=5000))


def test_k_that_is_not_a_constant_is_an_error() -> None:
    assert "topk-dynamic-k" in codes(topk_model(k_constant=False))


def test_integer_topk_input_is_an_error() -> None:
    assert "topk-input-type" in codes(topk_model(dtype=TensorProto.INT64))


def test_opset_above_20_is_an_error() -> None:
    assert "opset" in codes(topk_model(opset=21))
    assert "opset" not in codes(topk_model(opset=20))


def test_operator_tensorrt_lacks_is_an_error() -> None:
    unique = helper.make_node("Unique", ["x"], ["u"], name="unique")
    assert "trt-unsupported-op" in codes(topk_model(extra_node=unique))


def test_custom_domain_operator_is_an_error() -> None:
    custom = helper.make_node("FusedThing", ["x"], ["y"], name="fused", domain="com.example")
    model = topk_model(extra_node=custom)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert "custom-op" in codes(model)


def test_dynamic_input_dims_are_listed() -> None:
    findings = lint_onnx(topk_model(dynamic_input=True))
    dynamic = [f for f in findings if f.code == "dynamic-input"]
    assert dynamic and "n" in dynamic[0].message and dynamic[0].where == "x"


def test_checker_failure_is_reported_for_a_file(tmp_path: Path) -> None:
    model = topk_model()
    model.graph.node[0].input[0] = "does_not_exist"
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    assert "onnx-checker" in {f.code for f in errors(lint_onnx(path))}
