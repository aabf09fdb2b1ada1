"""Model archives: the native ``.podium`` format (``native``), TorchServe's ``.mar``
(``mar``) and what an archive asks to install (``requirements``).

``read_manifest``, ``verify`` and ``unpack`` take either format, picked by the file's suffix;
both end in the same ``Manifest``.
"""

from __future__ import annotations

from pathlib import Path

from podium.archive import mar, native
from podium.archive.native import (
    BUILTIN_HANDLERS,
    DEFAULT_LIMITS,
    MANIFEST_PATH,
    MAR_SUFFIX,
    SUFFIX,
    Manifest,
    UnpackLimits,
    collect_files,
    pack,
)

__all__ = [
    "BUILTIN_HANDLERS",
    "DEFAULT_LIMITS",
    "MANIFEST_PATH",
    "MAR_SUFFIX",
    "SUFFIX",
    "Manifest",
    "UnpackLimits",
    "collect_files",
    "pack",
    "read_manifest",
    "unpack",
    "verify",
]


def read_manifest(path: Path) -> Manifest:
    """Read and validate an archive's manifest without extracting anything."""
    if path.suffix == MAR_SUFFIX:
        return mar.read_manifest(path)
    return native.read_manifest(path)


def verify(path: Path, limits: UnpackLimits = DEFAULT_LIMITS) -> Manifest:
    """Check the manifest, every member name and every hash, reading every member (and
    writing none) within ``limits``; return the manifest."""
    if path.suffix == MAR_SUFFIX:
        return mar.verify(path, limits)
    return native.verify(path, limits)


def unpack(path: Path, target: Path, limits: UnpackLimits = DEFAULT_LIMITS) -> Manifest:
    """Extract a verified archive into the new folder ``target`` within ``limits``; return
    its manifest. Nothing is left behind on failure, and nothing lands outside ``target``."""
    if path.suffix == MAR_SUFFIX:
        return mar.unpack(path, target, limits)
    return native.unpack(path, target, limits)
