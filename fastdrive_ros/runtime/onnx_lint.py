"""Checks an exported graph must pass before anyone builds an engine from it.

ONNX's own checker (full check, with shape inference), then what TensorRT's ONNX parser needs:
default-domain opset <= 20, every TopK sorted with a constant K < 3840 and float input, no operator
the parser lacks, and a list of the dynamic dimensions (each needs an optimization profile).
`fastdrive export` fails on errors; the TensorRT builder runs the same lint before building.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fastdrive_ros.runtime.keep_plan import TRT_TOPK_MAX_K
from fastdrive_ros.runtime.optional import import_onnx

MAX_OPSET = 20

# Operators TensorRT's ONNX parser does not implement (onnx-tensorrt docs/operators.md, kept short:
# the ones a vision graph could plausibly contain).
TRT_UNSUPPORTED_OPS: frozenset[str] = frozenset(
    {
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
        "SequenceLength", "SequenceMap", "SplitToSequence", "ConcatFromSequence",
        "Optional", "OptionalGetElement", "OptionalHasElement",
        "Unique", "Compress", "StringNormalizer", "TfIdfVectorizer",
        "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear",
        "Det", "Hardmax", "MaxRoiPool", "MaxUnpool", "Multinomial", "Bernoulli", "BitShift",
        "DFT", "STFT", "MelWeightMatrix", "BlackmanWindow", "HammingWindow", "HannWindow",
        "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss",
    }
)  # fmt: skip
_FLOAT_TYPES = {"FLOAT", "FLOAT16", "BFLOAT16"}

Level = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class LintFinding:
    """One finding: level, a short code, what was found, and where (node or tensor name)."""

    level: Level
    code: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        return f"{self.level.upper()} {self.code}{where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "level": self.level,
            "code": self.code,
            "message": self.message,
            "where": self.where,
        }


def errors(findings: list[LintFinding]) -> list[LintFinding]:
    """Only the findings that must stop an export or a build."""
    return [f for f in findings if f.level == "error"]


def _constants(model: Any) -> dict[str, Any]:
    """Tensor name -> numpy value for initializers and Constant nodes (value attribute)."""
    onnx = import_onnx()
    from onnx import numpy_helper

    values: dict[str, Any] = {}
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            values[init.name] = numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
                elif attr.name in ("value_int", "value_ints"):
                    values[node.output[0]] = onnx.helper.get_attribute_value(attr)
    return values


def _elem_types(model: Any) -> dict[str, str]:
    onnx = import_onnx()
    types: dict[str, str] = {}
    for info in (*model.graph.value_info, *model.graph.input, *model.graph.output):
        elem = info.type.tensor_type.elem_type
        if elem:
            types[info.name] = onnx.TensorProto.DataType.Name(elem)
    for init in model.graph.initializer:
        types[init.name] = onnx.TensorProto.DataType.Name(init.data_type)
    return types


def _dims(info: Any) -> list[str]:
    out = []
    for dim in info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            out.append(str(dim.dim_value))
        else:
            out.append(dim.dim_param or "?")
    return out


def _check_topk(
    node: Any, constants: dict[str, Any], types: dict[str, str], max_k: int
) -> list[LintFinding]:
    onnx = import_onnx()
    found: list[LintFinding] = []
    where = node.name or node.output[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if int(attrs.get("sorted", 1)) != 1:
        found.append(
            LintFinding(
                "error",
                "topk-unsorted",
                "TopK has sorted=0; TensorRT's parser needs sorted=1",
                where,
            )
        )
    k_name = node.input[1] if len(node.input) > 1 else ""
    if k_name not in constants:
        found.append(
            LintFinding(
                "error",
                "topk-dynamic-k",
                f"TopK K ({k_name!r}) is not a constant; TensorRT needs an initializer",
                where,
            )
        )
    else:
        k = int(np.asarray(constants[k_name]).reshape(-1)[0])
        if k > max_k:
            found.append(
                LintFinding(
                    "error",
                    "topk-k-limit",
                    f"TopK K={k} but TensorRT needs K < {max_k + 1}: prune per "
                    "camera or raise the prune ratio",
                    where,
                )
            )
        else:
            found.append(LintFinding("info", "topk", f"TopK K={k} sorted", where))
    elem = types.get(node.input[0])
    if elem is not None and elem not in _FLOAT_TYPES:
        found.append(
            LintFinding(
                "error",
                "topk-input-type",
                f"TopK input is {elem}; TensorRT's TopK takes FLOAT/FLOAT16 only",
                where,
            )
        )
    return found


def lint_onnx(
    source: str | Path | Any, *, max_opset: int = MAX_OPSET, max_k: int = TRT_TOPK_MAX_K
) -> list[LintFinding]:
    """Lint an ONNX file (path) or ModelProto; returns every finding, errors first."""
    onnx = import_onnx()
    findings: list[LintFinding] = []
    if isinstance(source, (str, Path)):
        path = str(source)
        try:
            onnx.checker.check_model(path, full_check=True)
        except Exception as exc:  # ValidationError, InferenceError, OSError...
            findings.append(LintFinding("error", "onnx-checker", str(exc).strip()[:500]))
        model = onnx.load(path, load_external_data=False)
    else:
        model = source
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:
            findings.append(LintFinding("error", "onnx-checker", str(exc).strip()[:500]))
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        findings.append(LintFinding("warning", "shape-inference", str(exc).strip()[:300]))
        inferred = model

    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            if opset.version > max_opset:
                findings.append(
                    LintFinding(
                        "error", "opset", f"opset {opset.version} > {max_opset} (TensorRT)"
                    )
                )
        elif opset.domain != "ai.onnx.ml":
            findings.append(
                LintFinding(
                    "warning",
                    "custom-domain",
                    f"operator domain {opset.domain!r} v{opset.version}: "
                    "TensorRT needs a plugin for it",
                )
            )

    constants = _constants(model)
    types = _elem_types(inferred)
    for node in model.graph.node:
        where = node.name or (node.output[0] if node.output else node.op_type)
        if node.domain not in ("", "ai.onnx"):
            findings.append(
                LintFinding(
                    "error",
                    "custom-op",
                    f"{node.domain}::{node.op_type} has no TensorRT parser support",
                    where,
                )
            )
        elif node.op_type in TRT_UNSUPPORTED_OPS:
            findings.append(
                LintFinding(
                    "error",
                    "trt-unsupported-op",
                    f"{node.op_type} is not supported by TensorRT's ONNX parser",
                    where,
                )
            )
        elif node.op_type == "TopK":
            findings.extend(_check_topk(node, constants, types, max_k))

    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        init_names = {i.name for i in model.graph.initializer}
        for info in values:
            if info.name in init_names:
                continue
            dims = _dims(info)
            dynamic = [d for d in dims if not d.isdigit()]
            if dynamic:
                level: Level = "warning" if kind == "input" else "info"
                findings.append(
                    LintFinding(
                        level,
                        f"dynamic-{kind}",
                        f"{info.name} has dynamic dims [{', '.join(dims)}]; "
                        "TensorRT needs an optimization profile for them",
                        info.name,
                    )
                )
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: order[f.level])
