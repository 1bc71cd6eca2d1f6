"""`fastdrive export`'s core: the encoder + pruner + top-K graph to ONNX, with metadata and lint.

torch 2.13's dynamo exporter (torch.export, opset 20) is used; the legacy TorchScript exporter is
only a fall-back when dynamo fails, and the reason is logged and stored in the metadata. The file
is written to a temporary folder beside the target and moved into place only after the lint
passed, so a failed export never leaves a half-written model where a runtime would load it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastdrive_ros.runtime.errors import ExportError
from fastdrive_ros.runtime.export_graph import INPUT_NAME, OUTPUT_NAMES, EncoderPrunerGraph
from fastdrive_ros.runtime.keep_plan import plan_keep
from fastdrive_ros.runtime.model_source import ModelParts
from fastdrive_ros.runtime.onnx_lint import LintFinding, errors, lint_onnx
from fastdrive_ros.runtime.onnx_meta import (
    METADATA_KEY,
    ExportMetadata,
    Precision,
    onnx_content_hash,
    sidecar_path,
)
from fastdrive_ros.runtime.optional import import_onnx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and found."""

    path: Path
    sidecar: Path
    metadata: ExportMetadata
    content_hash: str
    findings: tuple[LintFinding, ...]
    seconds: float


def build_graph(
    parts: ModelParts,
    *,
    selector: str,
    prune_ratio: float,
    precision: Precision = "fp32",
) -> EncoderPrunerGraph:
    """The torch module that gets exported (fp16 works on copies: the shared model stays fp32)."""
    plan = plan_keep(
        selector=selector,
        cameras=parts.cameras,
        tokens_per_camera=parts.tokens_per_camera,
        prune_ratio=prune_ratio,
        budget=parts.budget,
    )
    encoder = parts.make_exportable(parts.image_size)
    scorer = parts.pruner if selector == "reconpruner" else None
    dtype = torch.float32
    if precision == "fp16":
        dtype = torch.float16
        encoder = copy.deepcopy(encoder).half()
        scorer = copy.deepcopy(scorer).half() if scorer is not None else None
    elif precision != "fp32":
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    graph = EncoderPrunerGraph(encoder=encoder, scorer=scorer, plan=plan, compute_dtype=dtype)
    return graph.eval()


def _export_dynamo(
    graph: torch.nn.Module, example: torch.Tensor, opset: int, dest: Path, props: dict[str, str]
) -> None:
    program = torch.onnx.export(
        graph,
        (example,),
        dynamo=True,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        optimize=True,
        verbose=False,
    )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    for key, value in props.items():
        program.model.metadata_props[key] = value
    program.model.producer_name = "fastdrive_ros"
    program.save(str(dest))


def _export_legacy(
    graph: torch.nn.Module, example: torch.Tensor, opset: int, dest: Path, props: dict[str, str]
) -> None:
    onnx = import_onnx()
    torch.onnx.export(
        graph,
        (example,),
        str(dest),
        dynamo=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        do_constant_folding=True,
    )
    model = onnx.load(str(dest))
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "fastdrive_ros"
    large = model.ByteSize() > (1 << 31) - (1 << 26)
    onnx.save_model(
        model,
        str(dest),
        save_as_external_data=large,
        location=dest.name + ".data" if large else None,
    )


def _default_opset(path: Path) -> int:
    """The opset of the default ONNX domain that `path` really imports."""
    model = import_onnx().load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), -1)


def export_encoder_pruner(
    parts: ModelParts,
    out: str | Path,
    *,
    selector: str = "reconpruner",
    prune_ratio: float | None = None,
    precision: Precision = "fp32",
    opset: int = 20,
    allow_legacy_fallback: bool = True,
    seed: int = 0,
) -> ExportResult:
    """Export encoder + selector + top-K of `parts` as one ONNX graph at `out`.

    Lints the graph and writes the sidecar JSON. Raises ExportError when export or lint fails.
    """
    start = time.perf_counter()
    out = Path(out)
    ratio = parts.default_prune_ratio if prune_ratio is None else prune_ratio
    try:
        graph = build_graph(parts, selector=selector, prune_ratio=ratio, precision=precision)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    plan = graph.plan
    log.info("keep plan: %s", plan.reason)
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(parts.input_shape, generator=generator)
    with torch.inference_mode():
        kept, _, _ = graph(example)
    metadata = ExportMetadata(
        selector=selector,
        plan=plan,
        image_size=parts.image_size,
        token_dim=int(kept.shape[1]),
        grid_thw=parts.grid_thw,
        camera_names=parts.camera_names,
        precision=precision,
        opset=opset,
        model_hash=parts.model_hash(),
        exporter="dynamo",
        torch_version=torch.__version__,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        dest = staging / out.name
        try:
            props = {METADATA_KEY: metadata.to_json(), **metadata.flat_props()}
            _export_dynamo(graph, example, opset, dest, props)
        except Exception as exc:  # torch.export raises many types; all mean "dynamo failed"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if not allow_legacy_fallback:
                raise ExportError(f"dynamo export failed: {first}") from exc
            reason = f"legacy: dynamo failed ({type(exc).__name__}: {first[:200]})"
            log.warning("falling back to the legacy ONNX exporter because %s", reason)
            metadata = dataclasses.replace(metadata, exporter=reason)
            props = {METADATA_KEY: metadata.to_json(), **metadata.flat_props()}
            for stale in staging.iterdir():
                stale.unlink()
            try:
                _export_legacy(graph, example, opset, dest, props)
            except Exception as exc2:
                raise ExportError(
                    f"both exporters failed: dynamo ({first}); legacy ({exc2})"
                ) from exc2
        written = _default_opset(dest)
        if written != opset:  # the label must be what is in the file (metadata, sidecar, engine)
            raise ExportError(
                f"asked for opset {opset}, but {metadata.exporter.split(':')[0]} exporter of "
                f"torch {torch.__version__} wrote opset {written}; ask for --opset {written} "
                "(torch's dynamo exporter writes 18 and above; TensorRT parses up to 20)"
            )
        findings = lint_onnx(dest)
        bad = errors(findings)
        if bad:
            listing = "\n  ".join(str(f) for f in bad)
            raise ExportError(f"exported graph failed the lint:\n  {listing}")
        content_hash = onnx_content_hash(dest)
        for produced in staging.iterdir():
            produced.replace(out.parent / produced.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    side = sidecar_path(out)
    write_sidecar(side, metadata, content_hash, findings)
    seconds = time.perf_counter() - start
    return ExportResult(out, side, metadata, content_hash, tuple(findings), seconds)


def write_sidecar(
    path: Path,
    metadata: ExportMetadata,
    content_hash: str,
    findings: list[LintFinding] | tuple[LintFinding, ...],
    **extra: Any,
) -> None:
    """Write `<name>.onnx.json`: metadata, the ONNX content hash, lint findings, extras."""
    data = json.loads(metadata.to_json())
    data["onnx_sha256"] = content_hash
    data["lint"] = [f.to_dict() for f in findings]
    data.update(extra)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def update_sidecar(path: Path, **fields: Any) -> None:
    """Add fields (parity figures, benchmark) to an existing sidecar."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(fields)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
