"""``podium.__all__`` lists exactly the public names, sorted."""

from __future__ import annotations

from types import ModuleType

import podium


def test_all_is_sorted_and_complete() -> None:
    assert podium.__all__ == sorted(podium.__all__)
    public = {
        name
        for name, value in vars(podium).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    public -= {"annotations", "TYPE_CHECKING", "Any"}
    assert public <= set(podium.__all__)
    for name in podium.__all__:
        assert getattr(podium, name) is not None


def test_every_error_the_client_can_raise_is_exported() -> None:
    from podium.errors import ERRORS_BY_CODE

    # Errors that never reach a client as an answer: a dropped client, and the CLI's own.
    local = {"ClientDisconnected", "ArchiveError", "ConfigError", "RequirementsError"}
    for code, error in ERRORS_BY_CODE.items():
        if code not in local:
            assert getattr(podium, code) is error, code
