"""Content hashes: what ties an ONNX file to the weights it came from and an engine to its ONNX."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch

# One file hash for the whole project: the weights' SHA256SUMS (nn/integrity.py) and the ONNX /
# engine keys here must agree byte for byte.
from fastdrive_ros.nn.integrity import sha256_of as file_sha256


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One hash over several files (name and content of each, in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def state_sha256(modules: dict[str, torch.nn.Module | None]) -> str:
    """Hash of the weights of named modules (name, dtype, shape and bytes of every tensor).

    Used as the "model hash" an export records: an ONNX or engine made from other weights is
    detected at start-up whatever folder layout the weights came from.
    """
    digest = hashlib.sha256()
    for prefix in sorted(modules):
        module = modules[prefix]
        if module is None:
            digest.update(f"{prefix}:none;".encode())
            continue
        state = module.state_dict()
        for name in sorted(state):
            tensor = state[name].detach().to("cpu").contiguous()
            digest.update(f"{prefix}.{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            if tensor.numel():
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
