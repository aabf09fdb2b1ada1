"""The model store: a folder of archives on disk, read as model versions.

Podium archives (``*.podium``) and TorchServe archives (``*.mar``) sit side by side.

The store only looks; the registry loads. Several versions of one model may sit side by
side; ``default_version`` picks the highest unless the caller sets one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from podium.archive import MAR_SUFFIX, SUFFIX, Manifest, read_manifest
from podium.errors import ArchiveError


@dataclass(frozen=True)
class StoredArchive:
    """One archive in the store and its (validated) manifest."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


def version_key(version: str) -> tuple[int, Version | str]:
    """Order versions the PEP 440 way, with unparsable ones below and by text."""
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def default_version(versions: list[str]) -> str:
    return max(versions, key=version_key)


class ModelStore:
    """The archives under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def scan(self, names: list[str] | None = None) -> tuple[list[StoredArchive], list[str]]:
        """Every readable archive (optionally only the named models), and one line per
        archive that could not be read."""
        if not self.root.is_dir():
            raise ArchiveError(f"model store {self.root} is not a folder")
        found: list[StoredArchive] = []
        problems: list[str] = []
        seen: set[tuple[str, str]] = set()
        paths = [p for p in self.root.iterdir() if p.suffix in (SUFFIX, MAR_SUFFIX)]
        for path in sorted(paths):
            try:
                manifest = read_manifest(path)
            except ArchiveError as error:
                problems.append(error.message)
                continue
            if names and manifest.name not in names and path.name not in names:
                continue
            key = (manifest.name, manifest.version)
            if key in seen:
                problems.append(f"{path.name}: {manifest.key} is already in the store; skipped")
                continue
            seen.add(key)
            found.append(StoredArchive(path, manifest))
        return found, problems
