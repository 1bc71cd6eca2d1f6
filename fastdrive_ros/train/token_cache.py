"""Frozen-encoder visual tokens cached on disk as float16 safetensors shards.

Stages B (planner) and C (ReconPruner) train on a frozen vision tower, so its tokens are computed
once per keyframe (on the GPU when there is one, every torchrun rank a share of the shards) and
read back memory-mapped. A folder holds `shard_NNNNN.safetensors` ("tokens" [S, N, D] and
"fg_fraction" [S, N], the foreground share of each token cell, NaN without masks) and
`cache.json`, which names the encoder (a hash of its weights), the image size and the records; a
cache made by another encoder or for other records is rebuilt, a half-written one is resumed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastdrive_ros.train.distributed import DistContext
from fastdrive_ros.train.images import cell_fraction, load_pixels, read_label
from fastdrive_ros.train.records import KeyframeRecord

MANIFEST = "cache.json"
CACHE_FORMAT = "fastdrive_ros.token_cache"
CACHE_VERSION = 1


def module_hash(module: nn.Module) -> str:
    """sha256 (16 hex digits) over a module's weights: names, shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()  # 0-d tensors (a scalar buffer) too: reshaped
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def records_digest(records: Sequence[KeyframeRecord]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(record.token.encode())
        digest.update("|".join(record.images).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class CacheSpec:
    """What a cache was made from (written to cache.json, compared on reuse)."""

    encoder_hash: str
    records_digest: str
    samples: int
    image_size: tuple[int, int]
    cameras: tuple[str, ...]
    tokens_per_camera: int
    width: int
    grid_thw: tuple[tuple[int, int, int], ...]
    shard_size: int
    resize: str = "bilinear"

    def to_dict(self) -> dict:
        return {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "encoder_hash": self.encoder_hash,
            "records_digest": self.records_digest,
            "samples": self.samples,
            "image_size": list(self.image_size),
            "cameras": list(self.cameras),
            "tokens_per_camera": self.tokens_per_camera,
            "width": self.width,
            "grid_thw": [list(g) for g in self.grid_thw],
            "shard_size": self.shard_size,
            "resize": self.resize,
        }

    @classmethod
    def from_dict(cls, data: dict) -> CacheSpec:
        if data.get("format") != CACHE_FORMAT or data.get("version") != CACHE_VERSION:
            raise ValueError("not a fastdrive_ros token cache (v1)")
        return cls(
            encoder_hash=data["encoder_hash"],
            records_digest=data["records_digest"],
            samples=int(data["samples"]),
            image_size=tuple(data["image_size"]),  # type: ignore[arg-type]
            cameras=tuple(data["cameras"]),
            tokens_per_camera=int(data["tokens_per_camera"]),
            width=int(data["width"]),
            grid_thw=tuple(tuple(g) for g in data["grid_thw"]),  # type: ignore[arg-type]
            shard_size=int(data["shard_size"]),
            resize=str(data.get("resize", "bilinear")),  # caches before it: bilinear
        )

    @property
    def shards(self) -> int:
        return math.ceil(self.samples / self.shard_size)


def _shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard_{index:05d}.safetensors"


def _read_manifest(folder: Path) -> tuple[CacheSpec | None, bool]:
    path = folder / MANIFEST
    if not path.is_file():
        return None, False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CacheSpec.from_dict(data), bool(data.get("complete"))
    except (ValueError, KeyError, json.JSONDecodeError):
        return None, False


def _write_manifest(folder: Path, spec: CacheSpec, complete: bool) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({**spec.to_dict(), "complete": complete}, indent=1))
    tmp.replace(folder / MANIFEST)


@torch.no_grad()
def build_token_cache(
    *,
    encoder: nn.Module,
    records: Sequence[KeyframeRecord],
    image_size: tuple[int, int],
    folder: str | Path,
    shard_size: int = 64,
    dist: DistContext | None = None,
    workers: int = 1,
    threads: int = 1,
    progress: bool = True,
    resize: str = "bilinear",
) -> TokenCache:
    """Encode every record's cameras once (frozen `encoder`, a VisionEncoder) and cache tokens.

    `resize` is the resampling of the camera images (the model's; part of the cache's spec).

    Resumes a half-written cache made by the same encoder for the same records; rebuilds one
    made by another. Under torchrun each rank writes shards rank, rank + world, ...; on a CPU
    without torchrun, `workers` processes (`threads` torch threads each) share the shards.
    """
    from tqdm.auto import tqdm

    from fastdrive_ros.nn.vision import VisionEncoder

    if not isinstance(encoder, VisionEncoder):
        raise TypeError(f"encoder must be a VisionEncoder, got {type(encoder).__name__}")
    if not records:
        raise ValueError("no records to cache")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    dist = dist or DistContext()
    folder = Path(folder)
    unit = encoder.patch_size * encoder.merge_size
    height, width = image_size
    cameras = records[0].cameras
    if any(r.cameras != cameras for r in records):
        raise ValueError("every record must have the same cameras (read them in one go)")
    gh, gw = height // encoder.patch_size, width // encoder.patch_size
    spec = CacheSpec(
        encoder_hash=module_hash(encoder),
        records_digest=records_digest(records),
        samples=len(records),
        image_size=(int(height), int(width)),
        cameras=tuple(cameras),
        tokens_per_camera=(height // unit) * (width // unit),
        width=encoder.out_dim,
        grid_thw=tuple((1, gh, gw) for _ in cameras),
        shard_size=int(shard_size),
        resize=resize,
    )
    old, complete = _read_manifest(folder)
    if old == spec and complete:
        return TokenCache(folder)
    if dist.is_main:
        if old != spec and folder.is_dir():
            for stale in folder.glob("shard_*.safetensors"):
                stale.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        _write_manifest(folder, spec, complete=False)
    dist.barrier()
    mine = [k for k in range(spec.shards) if k % dist.world_size == dist.rank]
    todo = [k for k in mine if not _shard_path(folder, k).is_file()]
    bar = tqdm(
        total=sum(min(shard_size, len(records) - k * shard_size) for k in todo),
        desc="cache visual tokens",
        unit="keyframe",
        disable=not (progress and dist.is_main),
    )
    if workers > 1 and not dist.enabled and dist.device.type == "cpu" and len(todo) > 1:
        _encode_in_processes(encoder, records, spec, folder, todo, workers, threads, bar)
    else:
        twin = encoder.exportable(spec.image_size).to(dist.device).eval()
        for k in todo:
            _encode_shard(twin, records, spec, folder, k, unit, dist.device)
            bar.update(min(shard_size, len(records) - k * shard_size))
    bar.close()
    dist.barrier()
    if dist.is_main:
        missing = [k for k in range(spec.shards) if not _shard_path(folder, k).is_file()]
        if missing:
            raise RuntimeError(f"token cache {folder} is missing shards {missing[:5]}")
        _write_manifest(folder, spec, complete=True)
    dist.barrier()
    return TokenCache(folder)


def _encode_shard(
    twin: nn.Module,
    records: Sequence[KeyframeRecord],
    spec: CacheSpec,
    folder: Path,
    k: int,
    unit: int,
    device: torch.device,
) -> None:
    """Encode shard k's records and write it atomically."""
    from safetensors.torch import save_file

    dtype = next(twin.parameters()).dtype
    chunk = records[k * spec.shard_size : (k + 1) * spec.shard_size]
    tokens, fractions = [], []
    with torch.no_grad():
        for record in chunk:
            pixels = load_pixels(record.images, spec.image_size, spec.resize)
            pixels = pixels.to(device=device, dtype=dtype)
            out = twin(pixels)  # [C, n, D]
            tokens.append(out.reshape(-1, out.shape[-1]).to(torch.float16).cpu())
            fractions.append(torch.from_numpy(_fractions(record, spec.image_size, unit)))
    tensors = {
        "tokens": torch.stack(tokens).contiguous(),
        "fg_fraction": torch.stack(fractions).to(torch.float16).contiguous(),
    }
    tmp = _shard_path(folder, k).with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"encoder_hash": spec.encoder_hash})
    tmp.replace(_shard_path(folder, k))


def _worker_encode(payload: dict) -> list[int]:
    """Process-pool job: rebuild the encoder from its config and weights, encode some shards."""
    from fastdrive_ros.nn.vision import VisionEncoder

    torch.set_num_threads(payload["threads"])
    encoder = VisionEncoder(config=payload["config"])
    encoder.load_state_dict(payload["state"])
    spec: CacheSpec = payload["spec"]
    twin = encoder.exportable(spec.image_size).eval()
    unit = encoder.patch_size * encoder.merge_size
    for k in payload["shards"]:
        _encode_shard(
            twin, payload["records"], spec, payload["folder"], k, unit, torch.device("cpu")
        )
    return list(payload["shards"])


def _encode_in_processes(encoder, records, spec, folder, todo, workers, threads, bar) -> None:
    """CPU only: `workers` processes with `threads` torch threads each encode shards in turn.

    Under a busy CPU, several one-thread processes beat one multi-threaded process (no OpenMP
    barrier waits for a descheduled thread).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = []
        for k in todo:  # one job per shard: progress as shards finish
            payload = {
                "config": encoder.config,
                "state": state,
                "spec": spec,
                "records": list(records),
                "folder": folder,
                "shards": [k],
                "threads": threads,
            }
            futures.append(pool.submit(_worker_encode, payload))
        for future in as_completed(futures):
            for k in future.result():
                bar.update(min(spec.shard_size, spec.samples - k * spec.shard_size))


def _fractions(record: KeyframeRecord, size: tuple[int, int], unit: int) -> np.ndarray:
    parts = []
    for mask_path in record.fg_masks:
        if mask_path is None:
            count = (size[0] // unit) * (size[1] // unit)
            parts.append(np.full(count, np.nan, dtype=np.float32))
        else:
            parts.append(cell_fraction(read_label(mask_path, size, what="foreground mask"), unit))
    return np.concatenate(parts)


class TokenCache:
    """Read access to a complete cache: tokens(i) [N, D] and fg_fraction(i) [N], memory-mapped."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        spec, complete = _read_manifest(self.folder)
        if spec is None or not complete:
            raise FileNotFoundError(
                f"{self.folder} is not a complete token cache ({MANIFEST} missing or unfinished):"
                " build it again"
            )
        self.spec = spec
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return self.spec.samples

    @property
    def grid_thw(self) -> torch.Tensor:
        return torch.tensor(self.spec.grid_thw, dtype=torch.int64)

    @property
    def total_tokens(self) -> int:
        return self.spec.tokens_per_camera * len(self.spec.cameras)

    def _handle(self, shard: int):
        from safetensors import safe_open

        if shard not in self._handles:
            path = _shard_path(self.folder, shard)
            if not path.is_file():
                raise FileNotFoundError(f"token cache shard {path} is missing: rebuild the cache")
            self._handles[shard] = safe_open(str(path), framework="pt")
        return self._handles[shard]

    def _get(self, name: str, index: int) -> torch.Tensor:
        if not 0 <= index < self.spec.samples:
            raise IndexError(f"sample {index} outside the cache's {self.spec.samples}")
        shard, row = divmod(index, self.spec.shard_size)
        return self._handle(shard).get_slice(name)[row : row + 1][0]

    def tokens(self, index: int) -> torch.Tensor:
        """[N, D] float16 tokens of sample `index` (cameras concatenated, raster order)."""
        return self._get("tokens", index)

    def fg_fraction(self, index: int) -> torch.Tensor:
        """[N] float16 foreground share of each token cell (NaN where no mask)."""
        return self._get("fg_fraction", index)

    def __getstate__(self) -> dict:  # DataLoader workers reopen the shards themselves
        return {"folder": self.folder, "spec": self.spec, "_handles": {}}
