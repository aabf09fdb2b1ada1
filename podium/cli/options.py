"""Options that take several values after one flag, as argparse's ``nargs="+"`` does.

Click has no such option, so the command spreads the values before click parses them:
``--extra-files a b,c`` reaches click as ``--extra-files a --extra-files b --extra-files c``
(commas split as TorchServe's ``--extra-files a,b`` does). The values run up to the next
option or ``--``, so a positional argument goes before the flag or after another option.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import click


class SeveralValues(click.Option):
    """A repeatable option that also takes several values after one flag, and commas:
    ``--extra-files a b``, ``--extra-files a --extra-files b``, ``--extra-files a,b``.

    Its command must be a ``SeveralValuesCommand``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)


class SeveralValuesCommand(click.Command):
    """A command whose ``SeveralValues`` options take several values after one flag."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags = {
            flag
            for param in self.params
            if isinstance(param, SeveralValues)
            for flag in param.opts
            if flag.startswith("--")
        }
        return super().parse_args(ctx, spread(args, flags))


def spread(args: list[str], flags: Collection[str]) -> list[str]:
    """Repeat the flag before each of its values, splitting them at commas.

    >>> spread(["--extra-files", "a", "b,c", "-o", "out"], {"--extra-files"})
    ['--extra-files', 'a', '--extra-files', 'b', '--extra-files', 'c', '-o', 'out']
    """
    spread_args: list[str] = []
    flag: str | None = None  # the flag whose values are being read
    needs_value = False  # right after a bare flag: the next argument is its value, as in click
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if flag is not None and (needs_value or not arg.startswith("-")):
            spread_args += _each(flag, arg)
            needs_value = False
        elif arg == "--":
            return spread_args + args[index:]
        elif name in flags:
            flag, needs_value = name, not equals
            if equals:
                spread_args += _each(flag, value)
        else:
            flag = None
            spread_args.append(arg)
    if needs_value and flag is not None:
        spread_args.append(flag)  # click says that the flag needs a value
    return spread_args


def _each(flag: str, value: str) -> list[str]:
    values = [part for part in value.split(",") if part] or [value]
    return [arg for part in values for arg in (flag, part)]
