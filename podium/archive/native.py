"""Native archives: one zip holding a model, its handler, extra files and a manifest.

Layout of ``NAME-VERSION.podium``::

    .podium/manifest.json   the Manifest below, with a sha256 for every other member
    handler.py              the handler code (unless a built-in handler is named)
    model.joblib            the serialized model
    ...                     extra files, flat or in folders

``pack`` writes one, ``read_manifest`` reads and validates its manifest, ``verify`` checks
every hash, and ``unpack`` extracts it safely: no absolute paths, no ``..``, no links, no
member or total size over the limits, every hash checked before the handler can load it.

``UnpackLimits`` caps what one archive may unpack to (``max_unpacked_bytes`` and
``max_compression_ratio`` in the settings): the sizes the zip headers declare are checked
first, to refuse early, and the bytes actually inflated are counted as they are read, so
a header that lies cannot get past the limits either. ``podium.archive.mar`` reads
TorchServe's ``.mar`` with the same checks; ``podium.archive`` picks the format by suffix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from podium.errors import ArchiveError
from podium.version import __version__

MANIFEST_PATH = ".podium/manifest.json"
SUFFIX = ".podium"
FORMAT: Literal["podium/1"] = "podium/1"
BUILTIN_HANDLERS = ("onnx", "sklearn", "torch", "torchserve", "transformers")
MAR_SUFFIX = ".mar"

MAX_MEMBER_BYTES = 8 * 1024**3
MAX_UNPACKED_BYTES = 16 * 1024**3
MAX_COMPRESSION_RATIO = 200.0
RATIO_EXEMPT_BYTES = 16 * 1024**2
"""An archive may always unpack to this much, whatever its compression ratio."""
MAX_MEMBERS = 10_000
MAX_MANIFEST_BYTES = 1024**2
CHUNK = 1024**2


class Manifest(BaseModel):
    """What an archive holds and how to serve it."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["podium/1"] = FORMAT
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
    version: str = Field(default="1.0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}$")
    handler: str
    """A built-in handler name (``sklearn``) or ``file.py[:Class]`` inside the archive."""
    model_file: str | None = None
    files: dict[str, str] = Field(default_factory=dict)
    """Path inside the archive → sha256 hex digest, for every member but the manifest."""
    requirements: str | None = None
    batch_size: int = Field(default=32, ge=1, le=4096)
    max_batch_delay: float = Field(default=5.0, ge=0, le=60_000)
    """Milliseconds the ``fixed`` policy waits for a full batch (``adaptive`` never waits)."""
    batching: Literal["adaptive", "fixed"] = "adaptive"
    min_workers: int = Field(default=1, ge=0, le=64)
    max_workers: int = Field(default=1, ge=1, le=64)
    labels: list[str] | None = None
    signature: dict[str, Any] | None = None
    example: Any = None
    warmup: list[Any] = Field(default_factory=list)
    """Requests each worker runs after loading, before it counts as ready."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Handler-specific settings (max length, threads, ...)."""
    podium_version: str = ""
    created: str = ""

    @field_validator("files")
    @classmethod
    def _safe_member_names(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            check_member_name(name)
        return files

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class UnpackLimits:
    """How much one archive may unpack to: ``max_bytes`` in all, and ``max_ratio`` times
    the archive's own size (past ``RATIO_EXEMPT_BYTES``).

    >>> UnpackLimits(max_bytes=2 * 1024**3, max_ratio=100)
    UnpackLimits(max_bytes=2147483648, max_ratio=100)
    """

    max_bytes: int = MAX_UNPACKED_BYTES
    max_ratio: float = MAX_COMPRESSION_RATIO


DEFAULT_LIMITS = UnpackLimits()


class UnpackBudget:
    """What one archive may still unpack to; ``spend`` counts bytes as they are inflated."""

    def __init__(self, limits: UnpackLimits, archive_bytes: int, label: str) -> None:
        self.limits = limits
        self.label = label
        self.by_ratio = max(int(limits.max_ratio * archive_bytes), RATIO_EXEMPT_BYTES)
        self.spent = 0

    @classmethod
    def of(cls, path: Path, limits: UnpackLimits) -> UnpackBudget:
        """The budget of the archive at ``path``, from its size on disk."""
        return cls(limits, path.stat().st_size, path.name)

    def check(self, total: int) -> None:
        """Refuse (``ArchiveError``, naming the limit) if unpacking ``total`` bytes in all
        would break a limit."""
        if total > self.by_ratio:
            raise ArchiveError(
                f"{self.label}: unpacks to more than max_compression_ratio "
                f"({self.limits.max_ratio:g}) times its own size (a zip bomb?)"
            )
        if total > self.limits.max_bytes:
            raise ArchiveError(
                f"{self.label}: unpacks to more than max_unpacked_bytes "
                f"({self.limits.max_bytes} bytes)"
            )

    def spend(self, count: int) -> None:
        """Count ``count`` more bytes inflated; refuse past a limit."""
        self.spent += count
        self.check(self.spent)


def check_member_name(name: str) -> None:
    """Refuse member names that could escape the folder they are unpacked into."""
    path = PurePosixPath(name)
    if not name or "\\" in name or "\x00" in name:
        raise ArchiveError(f"unsafe member name {name!r}")
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise ArchiveError(f"absolute path in archive: {name!r}")
    if ".." in path.parts:
        raise ArchiveError(f"'..' in archive member: {name!r}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pack(
    manifest: Manifest,
    files: dict[str, Path],
    out_dir: Path,
    *,
    on_file: Any = None,
) -> Path:
    """Write ``out_dir/NAME-VERSION.podium`` holding ``files`` (archive name → source).

    The manifest's ``files`` map is filled in with each file's sha256.
    """
    for name in files:
        check_member_name(name)
    if MANIFEST_PATH in files:
        raise ArchiveError(f"{MANIFEST_PATH} is reserved")
    hashes = {name: sha256_file(source) for name, source in sorted(files.items())}
    manifest = manifest.model_copy(
        update={
            "files": hashes,
            "podium_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest.name}-{manifest.version}{SUFFIX}"
    partial = target.with_suffix(SUFFIX + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST_PATH, manifest.model_dump_json(indent=2))
            for name, source in sorted(files.items()):
                archive.write(source, name)
                if on_file is not None:
                    on_file(name, source.stat().st_size)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)  # nothing half-written is left behind
        raise
    return target


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError(f"{path.name}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ArchiveError(f"{path.name}: not a readable zip archive ({error})") from None


def read_manifest(path: Path) -> Manifest:
    """Read and validate an archive's manifest without extracting anything."""
    with open_zip(path) as archive:
        return _manifest_of(archive, path.name)


def _manifest_of(archive: zipfile.ZipFile, label: str) -> Manifest:
    try:
        info = archive.getinfo(MANIFEST_PATH)
    except KeyError:
        raise ArchiveError(f"{label}: no {MANIFEST_PATH}") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{label}: manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = archive.read(info)
        return Manifest.model_validate(orjson.loads(raw))
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ArchiveError(f"{label}: manifest unreadable ({error})") from None
    except orjson.JSONDecodeError:
        raise ArchiveError(f"{label}: manifest is not valid JSON") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "manifest"
        raise ArchiveError(f"{label}: invalid manifest: {where}: {first['msg']}") from None


def check_members(
    archive: zipfile.ZipFile, listed: set[str] | None, label: str, budget: UnpackBudget
) -> None:
    """Every member's name, type and declared size (against ``budget``); with ``listed``,
    also that the manifest names exactly the members present."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArchiveError(f"{label}: more than {MAX_MEMBERS} members")
    total = 0
    for info in infos:
        check_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"{label}: symbolic link in archive: {info.filename!r}")
        if info.is_dir():
            continue
        if listed is not None and info.filename != MANIFEST_PATH and info.filename not in listed:
            raise ArchiveError(f"{label}: {info.filename!r} is not listed in the manifest")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ArchiveError(f"{label}: {info.filename!r} is larger than the member limit")
        total += info.file_size
    budget.check(total)
    if listed is None:
        return
    missing = listed - {info.filename for info in infos}
    if missing:
        raise ArchiveError(f"{label}: listed but missing: {sorted(missing)[0]!r}")


def copy_member(
    archive: zipfile.ZipFile,
    name: str,
    expected: str | None,
    label: str,
    target: Path | None,
    budget: UnpackBudget,
) -> None:
    """Stream one member, hashing it and (if ``target``) writing it; check its size, each
    chunk against ``budget`` before it is written, and its hash unless ``expected`` is None
    (a .mar carries no hashes)."""
    info = archive.getinfo(name)
    digest = hashlib.sha256()
    written = 0
    sink = target.open("xb") if target is not None else None
    try:
        with archive.open(info) as source:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise ArchiveError(f"{label}: {name!r} is larger than its header says")
                budget.spend(len(chunk))
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ArchiveError(f"{label}: {name!r} is corrupt ({error})") from None
    finally:
        if sink is not None:
            sink.close()
    if expected is not None and digest.hexdigest() != expected:
        raise ArchiveError(f"{label}: hash mismatch for {name!r} (tampered or corrupt)")


def verify(path: Path, limits: UnpackLimits = DEFAULT_LIMITS) -> Manifest:
    """Check the manifest, every member name and every hash, reading every member (and
    writing none) within ``limits``; return the manifest."""
    with open_zip(path) as archive:
        budget = UnpackBudget.of(path, limits)
        manifest = _manifest_of(archive, path.name)
        check_members(archive, set(manifest.files), path.name, budget)
        for name, expected in manifest.files.items():
            copy_member(archive, name, expected, path.name, None, budget)
    return manifest


def unpack(path: Path, target: Path, limits: UnpackLimits = DEFAULT_LIMITS) -> Manifest:
    """Extract a verified archive into the new folder ``target`` within ``limits``; return
    its manifest.

    Nothing is left behind on failure, and nothing lands outside ``target``.
    """
    with open_zip(path) as archive:
        budget = UnpackBudget.of(path, limits)
        manifest = _manifest_of(archive, path.name)
        check_members(archive, set(manifest.files), path.name, budget)
        return extract(archive, manifest, manifest.files, path.name, target, budget)


def extract(
    archive: zipfile.ZipFile,
    manifest: Manifest,
    members: Mapping[str, str | None],
    label: str,
    target: Path,
    budget: UnpackBudget,
) -> Manifest:
    """Write ``members`` (name → expected sha256, or None) of a checked archive into the new
    folder ``target``, then the manifest the worker reads; every byte written is counted
    against ``budget``. All or nothing."""
    target.mkdir(parents=True, mode=0o700)
    try:
        root = target.resolve()
        for name, expected in members.items():
            destination = (root / name).resolve()
            if not destination.is_relative_to(root):
                raise ArchiveError(f"{label}: {name!r} escapes the target folder")
            destination.parent.mkdir(parents=True, exist_ok=True)
            copy_member(archive, name, expected, label, destination, budget)
        # The worker reads the manifest from here; it is the validated one.
        (root / MANIFEST_PATH).parent.mkdir(exist_ok=True)
        (root / MANIFEST_PATH).write_text(manifest.model_dump_json(indent=2))
    except BaseException:
        _remove_tree(target)
        raise
    return manifest


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def collect_files(paths: Iterable[Path]) -> dict[str, Path]:
    """Map extra files and folders to archive names (a folder keeps its own name)."""
    files: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not child.is_symlink():
                    relative = child.relative_to(path.parent).as_posix()
                    files[relative] = child
        elif path.is_file():
            files[path.name] = path
        else:
            raise ArchiveError(f"{path}: no such file or folder")
    return files
