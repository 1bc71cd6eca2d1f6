"""Content hashes of saved weights: a bundle says what its weight files must contain.

Every folder this project saves weights into (the VLA bundle, its pruner/) gets a `SHA256SUMS`
file in the format of coreutils' `sha256sum` ("<hex>  <file name>", one line each), so
`sha256sum -c SHA256SUMS` checks it by hand too. Loading checks every weight file it reads
against it: a flipped byte in a tensor loads without complaint in safetensors and plans wrong
trajectories, so a mismatch is an error naming the file. A folder without the manifest (written
before it existed, or a Hugging Face checkpoint) loads with a warning: nothing to check against.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

MANIFEST = "SHA256SUMS"
_CHUNK = 1 << 22
LOG = logging.getLogger("fastdrive_ros.nn")


class WeightsIntegrityError(ValueError):
    """A weight file's bytes are not those its folder's SHA256SUMS records."""


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str | Path, names: Iterable[str]) -> Path:
    """Record the sha256 of `names` (files in `folder`) in folder/SHA256SUMS; returns its path."""
    folder = Path(folder)
    lines = [f"{sha256_of(folder / name)}  {name}\n" for name in sorted(names)]
    path = folder / MANIFEST
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_manifest(folder: str | Path) -> dict[str, str] | None:
    """Map file name -> recorded hex sha256, or None when the folder has no SHA256SUMS."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    recorded: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        name = name.strip().lstrip("*")  # sha256sum -b writes " *name"
        if len(digest) != 64 or not name or any(c not in "0123456789abcdef" for c in digest):
            raise WeightsIntegrityError(
                f"{path}:{number} is not a sha256sum line ('<64 hex digits>  <file name>'): "
                f"{line[:80]!r}; rewrite it with `sha256sum <weights> > {MANIFEST}` in {folder}"
            )
        recorded[name] = digest
    return recorded


def verify_file(path: str | Path, *, remedy: str) -> None:
    """Check `path` against the SHA256SUMS next to it; raise WeightsIntegrityError on a mismatch.

    `remedy` says how to get a good copy (it ends the error message). A folder without a
    manifest, or a manifest that does not list the file, is logged as a warning and accepted.
    """
    path = Path(path)
    recorded = read_manifest(path.parent)
    if recorded is None or path.name not in recorded:
        where = "has no " + MANIFEST if recorded is None else f"{MANIFEST} does not list it"
        LOG.warning("%s not verified: its folder %s (saved by an older version?)", path, where)
        return
    actual = sha256_of(path)
    if actual != recorded[path.name]:
        raise WeightsIntegrityError(
            f"{path} does not match its recorded content hash (sha256 {actual[:16]}..., "
            f"{MANIFEST} records {recorded[path.name][:16]}...): the file is corrupt or was "
            f"changed after it was saved; {remedy}"
        )
