"""What ``podium archive`` checks before it writes, and where each check runs.

In this process, reading files only:

    the target   ``NAME-VERSION.podium`` must not exist yet, unless ``--force``
    --labels     against the classes a model states: a transformers ``config.json``
                 (``id2label``, ``num_labels``), a torch ``signature``'s output width

In a subprocess (``podium.cli.archive_probe``), since they run the archive's code, on its
files staged as a worker sees them unpacked (small files copied, large ones linked):

    import       a handler file of yours, or the ``torchserve`` handler's, compiles,
                 imports and holds the handler the manifest names
    classes      --labels against an sklearn model's ``classes_`` or an onnx output's width
    run          the model loads as a worker loads it, and ``--example`` answers below 400

``run`` is what ``--check`` asks for. Without ``--check`` it runs only when cheap: there is
an ``--example``, the handler is ``sklearn``, ``onnx`` or a file of yours (not ``torch``,
``transformers`` or ``torchserve``, which import torch), and the archived files come to at
most ``CHEAP_BYTES``. ``--no-check`` runs nothing in the subprocess (for a host without the
server's packages); the checks in this process still apply.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import orjson

import podium
from podium.archive import BUILTIN_HANDLERS, MANIFEST_PATH, Manifest
from podium.backends.local.pool import THREAD_VARIABLES
from podium.cli.archive_probe import labels_problem
from podium.errors import ArchiveError
from podium.handlers.frameworks import stated_classes

CHEAP_BYTES = 64 * 1024**2
"""Most bytes of archived files for the example to be checked without ``--check``."""
CHEAP_HANDLERS = ("onnx", "sklearn")
"""Built-in handlers cheap enough to load for the default check (files of yours are too)."""
TIMEOUT = 60.0
"""Seconds the subprocess may take, unless ``--check`` asked for the model to be loaded."""
CHECK_TIMEOUT = 600.0
"""Seconds it may take with ``--check`` (a large model loads slowly)."""
COPY_BYTES = 16 * 1024**2
"""Files up to this size are copied into the staged folder; larger ones are linked."""


def refuse_existing(target: Path, force: bool) -> None:
    """Refuse to replace ``target`` unless ``force``."""
    if target.exists() and not force:
        raise ArchiveError(f"{target} exists: use --force to replace it")


def check_archive(manifest: Manifest, files: Mapping[str, Path], check: bool | None) -> None:
    """Refuse (``ArchiveError``, one line) an archive that would not serve as asked.

    ``files`` maps each name in the archive to the file it is packed from; ``check`` is
    ``--check`` (True), ``--no-check`` (False) or neither (None: the default rule).
    """
    problem = labels_problem(
        manifest.labels, stated_classes(manifest.handler, manifest.options, files)
    )
    if problem:
        raise ArchiveError(problem)
    stages = plan(manifest, files, check)
    if stages:
        probe(manifest, files, stages, CHECK_TIMEOUT if check else TIMEOUT)


def plan(manifest: Manifest, files: Mapping[str, Path], check: bool | None) -> list[str]:
    """The subprocess's stages for this archive (none with ``--no-check``)."""
    if check is False:
        return []
    handler = manifest.handler
    own = handler not in BUILTIN_HANDLERS
    stages = ["import"] if own or handler == "torchserve" else []
    if manifest.labels and handler in CHEAP_HANDLERS:
        stages.append("classes")
    if check or (manifest.example is not None and is_cheap(manifest, files)):
        stages.append("run")
    return stages


def is_cheap(manifest: Manifest, files: Mapping[str, Path]) -> bool:
    """Whether the example is checked without ``--check`` (the rule in the docstring)."""
    handler = manifest.handler
    if handler not in CHEAP_HANDLERS and handler in BUILTIN_HANDLERS:
        return False
    return sum(source.stat().st_size for source in files.values()) <= CHEAP_BYTES


def probe(manifest: Manifest, files: Mapping[str, Path], stages: list[str], timeout: float) -> None:
    """Run ``stages`` of ``podium.cli.archive_probe`` on the staged files."""
    with tempfile.TemporaryDirectory(prefix="podium-check-") as temporary:
        work = Path(temporary)
        model_dir = stage(manifest, files, work / "model")
        request, result = work / "request.json", work / "result.json"
        request.write_bytes(orjson.dumps({"model_dir": str(model_dir), "stages": stages}))
        command = [sys.executable, "-m", "podium.cli.archive_probe", str(request), str(result)]
        try:
            done = subprocess.run(
                command,
                cwd=work,
                env=probe_environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ArchiveError(
                f"the check did not finish in {timeout:g} s (--no-check skips it)"
            ) from None
        if not result.is_file():
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            said = f": {lines[-1]}" if lines else ""
            raise ArchiveError(
                f"the check ended without an answer (exit status {done.returncode}){said}"
            )
        problem = orjson.loads(result.read_bytes())["problem"]
    if problem:
        raise ArchiveError(str(problem))


def stage(manifest: Manifest, files: Mapping[str, Path], model_dir: Path) -> Path:
    """Lay ``files`` out as ``podium.archive.unpack`` would, with the manifest a worker
    reads; return the folder."""
    model_dir.mkdir()
    for name, source in files.items():
        target = model_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.stat().st_size <= COPY_BYTES:
            shutil.copyfile(source, target)
        else:
            target.symlink_to(source.resolve())
    (model_dir / MANIFEST_PATH).parent.mkdir(exist_ok=True)
    (model_dir / MANIFEST_PATH).write_text(manifest.model_dump_json())
    return model_dir


def probe_environment() -> dict[str, str]:
    """The command's environment, with this podium on the path (the subprocess runs the
    same code; a site-packages folder is on it already, and must not go before the standard
    library) and one thread per library, as a worker of one core."""
    environment = dict(os.environ)
    root = str(Path(podium.__file__).resolve().parent.parent)
    if Path(root).name not in ("site-packages", "dist-packages"):
        path = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    for name in THREAD_VARIABLES:
        environment.setdefault(name, "1")
    return environment
