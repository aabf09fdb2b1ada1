"""An archive's requirements file, installed for its model alone (opt-in).

With ``install_requirements`` (``--install-requirements``; TorchServe's
``install_py_dep_per_model=true``), a version whose manifest names a requirements file
(a Podium archive's ``requirements``, a ``.mar``'s ``requirementsFile``) gets it installed
by pip into ``DEPS`` inside its unpacked folder, before its workers start. Its workers put
that folder first on ``sys.path``, so the model's pins win over the server's packages, and
no other model sees them. Installing runs code from the package index (build scripts), so
it is off by default; without it, such an archive loads with a warning and the packages
must already be in the server's environment.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from podium.errors import RequirementsError

DEPS = ".podium-deps"
"""The folder, inside a model's unpacked folder, that its requirements are installed in."""
PIP_OUTPUT_LINES = 20
"""Lines of pip's output kept in the error when an install fails."""

log = logging.getLogger("podium.requirements")


def requirements_file(model_dir: Path, name: str) -> Path:
    """The requirements file a manifest names, which must be a file inside the model folder."""
    root = model_dir.resolve()
    path = (model_dir / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise RequirementsError(f"requirements file {name!r} is not a file in the archive")
    return path


async def install(model_dir: Path, name: str, label: str, timeout: float) -> Path:
    """pip-install the requirements file ``name`` into ``model_dir / DEPS``; return that."""
    import asyncio  # here, not above: workers import this module for DEPS alone

    path = requirements_file(model_dir, name)
    target = model_dir / DEPS
    command = [
        sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--target", str(target), "--requirement", str(path),
    ]  # fmt: skip
    log.info("%s: installing %s into %s", label, name, target)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=model_dir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        raise RequirementsError(
            f"{label}: installing {name} took more than {timeout:g} s (--load-timeout)"
        ) from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())
    if process.returncode != 0:
        lines = output.decode("utf-8", "replace").strip().splitlines()[-PIP_OUTPUT_LINES:]
        raise RequirementsError(
            f"{label}: pip could not install {name} (exit {process.returncode}):\n"
            + "\n".join(lines)
        )
    log.info("%s: requirements installed", label)
    return target
