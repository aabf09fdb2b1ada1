"""Token files: a generated token is written where only this user can read it.

The token goes to a fresh file in the same folder, created exclusively and never through
a link (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600 from the start), which then replaces
the path in one step (``os.replace``). Whatever was at the path before, a symbolic link
planted by someone else included, is replaced, never written through or chmod-ed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` and a newline to ``path``, as a new file readable by this user only
    (a link at ``path`` is replaced by the file, its target left alone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
    descriptor = os.open(partial, CREATE_FLAGS, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            # Exactly 0600, whatever the umask.
            os.fchmod(file.fileno(), 0o600)
            file.write(secret + "\n")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
