"""TorchServe model archives (``.mar``): read, unpack and convert them.

A ``.mar`` is the zip ``torch-model-archiver`` writes (its default format)::

    MAR-INF/MANIFEST.json   {"runtime": "python", "model": {"modelName", "modelVersion",
                             "handler", "serializedFile", "modelFile", "requirementsFile",
                             "configFile", ...}, "archiverVersion": ...}
    handler.py              the handler (or a TorchServe built-in is named instead)
    model.pt                the serialized model
    ...                     extra files, by their base name
    model-config.yaml       optional: batchSize, maxBatchDelay, minWorkers, maxWorkers

Podium reads it into the same ``Manifest`` as its own archives, with the ``torchserve``
handler (``podium.compat.torchserve.handler``) running the archive's handler unchanged. TorchServe's
defaults apply where the archive says nothing: batches of one, 100 ms batch delay.

A ``.mar`` carries no hashes, so only its structure can be checked (names, links, sizes,
zip CRCs). ``convert`` turns it into a Podium archive, which adds a sha256 for every file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from podium.archive import native
from podium.archive.native import Manifest
from podium.errors import ArchiveError

MAR_MANIFEST = "MAR-INF/MANIFEST.json"
MAX_CONFIG_BYTES = 1024**2

# model-config.yaml keys for TorchServe's front end that Podium has no use for (the rest of
# the file is the handler's own configuration, context.model_yaml_config).
IGNORED_CONFIG = frozenset(
    {
        "responseTimeout",
        "startupTimeout",
        "deviceType",
        "deviceIds",
        "parallelType",
        "parallelLevel",
        "jobQueueSize",
        "maxRetryTimeoutInSec",
        "clientTimeoutInMills",
        "useJobTicket",
        "continuousBatching",
        "sequenceMaxIdleMSec",
        "maxSequenceJobQueueSize",
        "maxNumSequence",
        "asyncCommunication",
        "torchrun",
    }
)
log = logging.getLogger("podium.mar")

# TorchServe's own defaults for a model whose archive and config say nothing.
DEFAULT_BATCH_SIZE = 1
DEFAULT_MAX_BATCH_DELAY = 100.0


class MarModel(BaseModel):
    """The ``model`` object of MAR-INF/MANIFEST.json (only the keys Podium reads)."""

    model_config = ConfigDict(extra="allow")

    modelName: str
    modelVersion: str = "1.0"
    handler: str
    serializedFile: str | None = None
    modelFile: str | None = None
    requirementsFile: str | None = None
    configFile: str | None = None


class MarManifest(BaseModel):
    """MAR-INF/MANIFEST.json as ``torch-model-archiver`` writes it."""

    model_config = ConfigDict(extra="allow")

    runtime: str = "python"
    model: MarModel


def read_manifest(path: Path) -> Manifest:
    """The Podium manifest of a ``.mar``, without extracting anything."""
    with _open(path) as mar:
        return _manifest_of(mar, path.name)


def verify(path: Path, limits: native.UnpackLimits = native.DEFAULT_LIMITS) -> Manifest:
    """Check the manifest, every member's name, type and size, and every CRC, reading
    every member (and writing none) within ``limits``."""
    with _open(path) as mar:
        budget = native.UnpackBudget.of(path, limits)
        manifest = _manifest_of(mar, path.name)
        native.check_members(mar, None, path.name, budget)
        for name in _members(mar):
            native.copy_member(mar, name, None, path.name, None, budget)
    return manifest


def unpack(
    path: Path, target: Path, limits: native.UnpackLimits = native.DEFAULT_LIMITS
) -> Manifest:
    """Extract a ``.mar`` safely into the new folder ``target`` within ``limits``; return
    its manifest."""
    with _open(path) as mar:
        budget = native.UnpackBudget.of(path, limits)
        manifest = _manifest_of(mar, path.name)
        native.check_members(mar, None, path.name, budget)
        members: dict[str, str | None] = dict.fromkeys(_members(mar))
        return native.extract(mar, manifest, members, path.name, target, budget)


def convert(
    path: Path,
    out_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    on_file: Callable[[str, int], None] | None = None,
) -> Path:
    """Write ``out_dir/NAME-VERSION.podium`` holding every file of the ``.mar`` (its
    MAR-INF/MANIFEST.json included, so handlers see the same ``context.manifest``), with
    ``overrides`` (batch_size, workers...) over the manifest fields."""
    work = Path(tempfile.mkdtemp(prefix="podium-mar-"))
    try:
        manifest = unpack(path, work / "model")
        if overrides:
            try:
                manifest = Manifest.model_validate({**manifest.model_dump(), **overrides})
            except ValidationError as error:
                raise ArchiveError(f"{path.name}: {_first(error)}") from None
        root = work / "model"
        files = {
            member.relative_to(root).as_posix(): member
            for member in sorted(root.rglob("*"))
            if member.is_file() and member.relative_to(root).as_posix() != native.MANIFEST_PATH
        }
        return native.pack(manifest, files, out_dir, on_file=on_file)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _open(path: Path) -> zipfile.ZipFile:
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ArchiveError(
            f"{path.name}: not a zip; only torch-model-archiver's default format is read "
            "(re-archive without --archive-format tgz/no-archive)"
        )
    return native.open_zip(path)


def _members(mar: zipfile.ZipFile) -> list[str]:
    return [info.filename for info in mar.infolist() if not info.is_dir()]


def _manifest_of(mar: zipfile.ZipFile, label: str) -> Manifest:
    raw = _read_small(mar, MAR_MANIFEST, label, native.MAX_MANIFEST_BYTES)
    if raw is None:
        raise ArchiveError(f"{label}: no {MAR_MANIFEST} (not a TorchServe model archive)")
    try:
        described = MarManifest.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError:
        raise ArchiveError(f"{label}: {MAR_MANIFEST} is not valid JSON") from None
    except ValidationError as error:
        raise ArchiveError(f"{label}: invalid {MAR_MANIFEST}: {_first(error)}") from None
    if described.runtime != "python":
        raise ArchiveError(f"{label}: runtime {described.runtime!r} is not served (python only)")
    config: dict[str, Any] = {}
    if described.model.configFile:
        config = _model_config(mar, described.model.configFile, label)
        ignored = sorted(set(config) & IGNORED_CONFIG)
        if ignored:
            log.warning(
                "%s: Podium ignores %s in %s", label, ", ".join(ignored), "the model config"
            )
    return to_manifest(described.model, config, label)


def to_manifest(model: MarModel, config: dict[str, Any], label: str) -> Manifest:
    """TorchServe's description of a model (and its model-config.yaml) → a Podium manifest."""
    min_workers = config.get("minWorkers", 1)
    try:
        return Manifest(
            name=model.modelName,
            version=model.modelVersion,
            handler="torchserve",
            model_file=model.serializedFile,
            requirements=model.requirementsFile,
            batch_size=config.get("batchSize", DEFAULT_BATCH_SIZE),
            max_batch_delay=config.get("maxBatchDelay", DEFAULT_MAX_BATCH_DELAY),
            min_workers=min_workers,
            max_workers=config.get("maxWorkers", max(1, min_workers)),
            options={"handler": model.handler},
        )
    except ValidationError as error:
        raise ArchiveError(f"{label}: {_first(error)}") from None


def _model_config(mar: zipfile.ZipFile, name: str, label: str) -> dict[str, Any]:
    raw = _read_small(mar, name, label, MAX_CONFIG_BYTES)
    if raw is None:
        raise ArchiveError(f"{label}: configFile {name!r} is not in the archive")
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ArchiveError(f"{label}: {name} is not valid YAML ({error})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ArchiveError(f"{label}: {name} must be a YAML mapping")
    return config


def _read_small(mar: zipfile.ZipFile, name: str, label: str, limit: int) -> bytes | None:
    try:
        native.check_member_name(name)
    except ArchiveError as error:
        raise ArchiveError(f"{label}: {error.message}") from None
    try:
        info = mar.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise ArchiveError(f"{label}: {name} is larger than {limit} bytes")
    try:
        return mar.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ArchiveError(f"{label}: {name} unreadable ({error})") from None


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "manifest"
    return f"{where}: {first['msg']}"
