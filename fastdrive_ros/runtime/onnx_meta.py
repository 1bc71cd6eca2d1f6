"""What an exported encoder+pruner ONNX carries about itself, and how a runtime checks it at start.

The export writes the same facts twice: in the ONNX `metadata_props` (key `fastdrive.export`,
JSON, plus a few flat keys for people reading the model in Netron) and in a sidecar JSON beside the
file (`<name>.onnx.json`) that also holds the ONNX content hash, the lint findings and the parity
figures. A runtime reads the metadata from the ONNX itself; the sidecar's hash tells it whether the
file changed since export.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastdrive_ros.runtime.errors import ModelFileError
from fastdrive_ros.runtime.hashing import file_sha256, files_sha256
from fastdrive_ros.runtime.keep_plan import KeepPlan
from fastdrive_ros.runtime.optional import import_onnx

METADATA_KEY = "fastdrive.export"
FORMAT_VERSION = 1
Precision = Literal["fp32", "fp16"]

REEXPORT = "re-export it with `fastdrive export --model DIR --out {path} --force`"


@dataclass(frozen=True)
class ExportMetadata:
    """Facts about one exported graph (shapes are fixed at export time).

    Attributes:
        selector: "reconpruner" or "none".
        plan: the top-K layout (C, n, K, per-camera budgets, prune ratio).
        image_size: (H, W) of every camera.
        token_dim: D, width of a merged token.
        grid_thw: [C][3] per-camera (t, h, w) in patch units, as VisualTokens.grid_thw.
        camera_names: camera order of the batch.
        precision: "fp32" or "fp16" (weights and compute; inputs/outputs stay float32).
        opset: ONNX default-domain opset.
        model_hash: state_sha256 of the encoder and pruner weights exported.
        exporter: "dynamo" or "legacy: <reason>".
        torch_version: torch that exported it.
    """

    selector: str
    plan: KeepPlan
    image_size: tuple[int, int]
    token_dim: int
    grid_thw: tuple[tuple[int, int, int], ...]
    camera_names: tuple[str, ...]
    precision: Precision
    opset: int
    model_hash: str
    exporter: str
    torch_version: str
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """[C, 3, H, W] of the `pixels` input."""
        return (self.plan.cameras, 3, self.image_size[0], self.image_size[1])

    def to_json(self) -> str:
        data = asdict(self)
        data["plan"] = self.plan.to_dict()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExportMetadata:
        data = json.loads(text)
        version = int(data.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(f"export format {version}, this code reads {FORMAT_VERSION}")
        return cls(
            selector=str(data["selector"]),
            plan=KeepPlan.from_dict(data["plan"]),
            image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
            token_dim=int(data["token_dim"]),
            grid_thw=tuple(tuple(int(v) for v in row) for row in data["grid_thw"]),
            camera_names=tuple(str(c) for c in data["camera_names"]),
            precision=data["precision"],
            opset=int(data["opset"]),
            model_hash=str(data["model_hash"]),
            exporter=str(data["exporter"]),
            torch_version=str(data["torch_version"]),
            format_version=version,
            extra=dict(data.get("extra", {})),
        )

    def flat_props(self) -> dict[str, str]:
        """Readable one-value keys (C, H, W, D, N, K, ratio...) for the ONNX metadata_props."""
        plan = self.plan
        return {
            "fastdrive.C": str(plan.cameras),
            "fastdrive.H": str(self.image_size[0]),
            "fastdrive.W": str(self.image_size[1]),
            "fastdrive.D": str(self.token_dim),
            "fastdrive.N": str(plan.total),
            "fastdrive.K": str(plan.keep),
            "fastdrive.prune_ratio": f"{plan.prune_ratio:g}",
            "fastdrive.budget": plan.mode,
            "fastdrive.selector": self.selector,
            "fastdrive.precision": self.precision,
            "fastdrive.opset": str(self.opset),
            "fastdrive.model_hash": self.model_hash,
        }


def sidecar_path(onnx_path: str | Path) -> Path:
    """`<name>.onnx.json` beside the ONNX file."""
    path = Path(onnx_path)
    return path.with_name(path.name + ".json")


def external_data_files(model: Any, folder: Path) -> list[Path]:
    """Files holding the initializers an ONNX model stores outside itself (sorted, unique)."""
    onnx = import_onnx()
    names: set[str] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    names.add(entry.value)
    return [folder / name for name in sorted(names)]


def onnx_content_hash(onnx_path: str | Path, model: Any | None = None) -> str:
    """Hash of the ONNX file plus its external-data files: the engine cache key's model part."""
    path = Path(onnx_path)
    if model is None:
        model = import_onnx().load(str(path), load_external_data=False)
    extra = external_data_files(model, path.parent)
    if not extra:
        return file_sha256(path)
    return files_sha256([path, *extra])


@dataclass(frozen=True)
class ExportInfo:
    """A checked ONNX file: where it is, what it holds, and its content hash."""

    path: Path
    metadata: ExportMetadata
    content_hash: str
    sidecar: dict[str, Any]


def read_export(onnx_path: str | Path, *, verify_hash: bool = True) -> ExportInfo:
    """Open an exported ONNX and check it; every problem is a ModelFileError naming the file.

    Checks: the file exists and parses, carries fastdrive export metadata of this format, its
    external-data files exist, and (verify_hash) it still has the content hash the sidecar
    recorded at export time.
    """
    path = Path(onnx_path)
    remedy = REEXPORT.format(path=path)
    if not path.is_file():
        raise ModelFileError(path, "ONNX file not found", f"export it: {remedy}")
    onnx = import_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValueError...
        raise ModelFileError(path, f"not a readable ONNX model ({exc})", remedy) from exc
    if not model.graph.node:
        raise ModelFileError(path, "ONNX model has an empty graph (truncated file?)", remedy)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(
            path,
            f"ONNX has no '{METADATA_KEY}' metadata: it was not written by fastdrive export",
            remedy,
        )
    try:
        metadata = ExportMetadata.from_json(props[METADATA_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(path, f"unreadable export metadata ({exc})", remedy) from exc
    for extra in external_data_files(model, path.parent):
        if not extra.is_file():
            raise ModelFileError(extra, f"external weights of {path.name} are missing", remedy)
    content_hash = onnx_content_hash(path, model)
    sidecar: dict[str, Any] = {}
    side = sidecar_path(path)
    if side.is_file():
        try:
            sidecar = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(side, f"unreadable export sidecar ({exc})", remedy) from exc
        parity = sidecar.get("parity") or {}
        if parity and not parity.get("ok", True):
            raise ModelFileError(
                path,
                "it failed its parity check against torch at export (see the sidecar "
                f"{side.name})",
                remedy,
            )
        recorded = sidecar.get("onnx_sha256")
        if verify_hash and recorded and recorded != content_hash:
            raise ModelFileError(
                path,
                f"content hash {content_hash[:12]} differs from the {recorded[:12]} recorded at "
                "export (file changed or corrupt)",
                remedy,
            )
    return ExportInfo(path=path, metadata=metadata, content_hash=content_hash, sidecar=sidecar)


def default_onnx_name(selector: str, prune_ratio: float, precision: Precision = "fp32") -> str:
    """File name for a selector and prune ratio, e.g. encoder_pruner-reconpruner-p050.onnx."""
    ratio = 0 if selector == "none" else round(prune_ratio * 100)
    suffix = "-fp16" if precision == "fp16" else ""
    return f"encoder_pruner-{selector}-p{ratio:03d}{suffix}.onnx"


def default_onnx_path(
    model_folder: str | Path, selector: str, prune_ratio: float, precision: Precision = "fp32"
) -> Path:
    """Where `fastdrive export` puts the graph by default: `<model folder>/onnx/<name>`."""
    return Path(model_folder) / "onnx" / default_onnx_name(selector, prune_ratio, precision)
