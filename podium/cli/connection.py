"""How the client commands (``predict``, ``models``, ``register``, ...) find a server: its
URL and token come from the same settings as ``podium serve`` reads, so a command run
beside the server's configuration needs no flags.

URL: ``--url`` (``PODIUM_URL``; ``PODIUM_MANAGEMENT_URL`` for the management commands),
else the server's ``host`` and ``port`` (``management_host``, ``management_port``) from
``PODIUM_*`` variables and podium.toml; a wildcard address (``0.0.0.0``, ``::``) is reached
on loopback.

Token (sent as ``Authorization: Bearer``), the first that is set:

    inference (predict)           management (models, register, ...)
    --token, PODIUM_TOKEN         --token, PODIUM_MANAGEMENT_TOKEN
    inference_token setting       management_token setting
    <token_file>.inference        <token_file>
    (none: a loopback server)     (none: an error)

The settings are read as ``podium serve`` reads them: ``PODIUM_*`` variables, then the
podium.toml file (``--config``, ``PODIUM_CONFIG``, else ``./podium.toml``). ``token_file``
(``--token-file``) is where the server wrote its generated tokens; a relative path given in
podium.toml, or the default ``podium-token``, is taken from podium.toml's folder (where the
server runs), one given by flag or ``PODIUM_TOKEN_FILE`` from the current folder.

Errors are one line on stderr and exit 1: ``error: cannot reach http://127.0.0.1:8080:
connection refused``, or ``error 404 ModelNotFound: ...`` for an error answer; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from podium.errors import PodiumError, ServerUnreachable
from podium.settings import Settings

API = Literal["inference", "management"]
F = TypeVar("F", bound=Callable[..., Any])
TOML = Path("podium.toml")


@dataclass(frozen=True)
class Connection:
    """Where one API of a server is, and the token it takes."""

    url: str
    token: str | None
    debug: bool


def connection_options(api: API) -> Callable[[F], F]:
    """``--url``, ``--token``, ``--token-file``, ``--config`` and ``--debug``; the command
    gets ``connection`` (a ``Connection``) in their place."""
    url_variable = "PODIUM_URL" if api == "inference" else "PODIUM_MANAGEMENT_URL"
    token_variable = "PODIUM_TOKEN" if api == "inference" else "PODIUM_MANAGEMENT_TOKEN"

    def decorate(command: F) -> F:
        def resolved(**values: Any) -> Any:
            connection = resolve(
                api,
                values.pop("url"),
                values.pop("token"),
                values.pop("token_file"),
                values.pop("config"),
                values.pop("debug"),
            )
            return command(connection=connection, **values)

        resolved.__name__, resolved.__doc__ = command.__name__, command.__doc__
        options = [
            click.option(
                "--url",
                envvar=url_variable,
                show_envvar=True,
                help=f"The {api} API [default: from the server's settings].",
            ),
            click.option(
                "--token", envvar=token_variable, show_envvar=True, help=f"The {api} token."
            ),
            click.option(
                "--token-file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="The server's token_file [default: from its settings].",
            ),
            click.option(
                "--config",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                envvar="PODIUM_CONFIG",
                show_envvar=True,
                help="The server's podium.toml [default: ./podium.toml].",
            ),
            click.option("--debug", is_flag=True, help="Show tracebacks."),
        ]
        for option in reversed(options):
            resolved = option(resolved)
        return resolved  # type: ignore[return-value]

    return decorate


def resolve(
    api: API,
    url: str | None,
    token: str | None,
    token_file: Path | None,
    config: Path | None,
    debug: bool,
) -> Connection:
    """The URL and token of ``api``, from the flags, then the server's settings (read only
    when a flag leaves something to find)."""
    if url is None or token is None:
        settings = server_settings(config or TOML)
    if url is None:
        host, port = settings.host, settings.port
        if api == "management":
            host, port = settings.management_host, settings.management_port
            if not port:
                raise click.ClickException("the management API is off (management_port is 0)")
        url = f"http://{loopback(host)}:{port}"
    if token is None:
        token = settings.inference_token if api == "inference" else settings.management_token
        if token is None:
            path = token_path(settings, token_file, (config or TOML).absolute().parent)
            if api == "inference":
                path = path.with_name(path.name + ".inference")
            token = read_token(path, required=api == "management")
    return Connection(url.rstrip("/"), token, debug)


def server_settings(config: Path) -> Settings:
    """The settings ``podium serve`` would run with, its podium.toml being ``config``."""

    class ConfiguredSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config})

    try:
        return ConfiguredSettings()
    except ValidationError as error:
        wrong = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise click.ClickException(f"the server's settings ({config}): {wrong}") from None
    except ValueError as error:  # podium.toml is not TOML
        raise click.ClickException(f"{config}: {error}") from None


def token_path(settings: Settings, flag: Path | None, folder: Path) -> Path:
    """``token_file``: from the flag or ``PODIUM_TOKEN_FILE`` as given (the current folder),
    from podium.toml or the default relative to podium.toml's folder."""
    if flag is not None:
        return flag
    from_environment = any(name.upper() == "PODIUM_TOKEN_FILE" for name in os.environ)
    if from_environment or settings.token_file.is_absolute():
        return settings.token_file
    return folder / settings.token_file


def read_token(path: Path, *, required: bool) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError as error:
        if required:
            raise click.ClickException(
                f"no management token: give --token or PODIUM_MANAGEMENT_TOKEN, or run where "
                f"the server's token file is ({path}: {error.strerror or error})"
            ) from None
        return None


def loopback(host: str) -> str:
    """The address to reach a server bound to ``host`` on: loopback for a wildcard."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextmanager
def reported(debug: bool) -> Iterator[None]:
    """Turn a ``PodiumError`` into one line on stderr and exit 1 (unless ``debug``)."""
    try:
        yield
    except PodiumError as error:
        if debug:
            raise
        # An answer's status and class name (what a script matches on); none for no answer.
        prefix = "error"
        if not isinstance(error, ServerUnreachable):
            prefix = f"error {error.status} {error.code}"
        click.echo(f"{click.style(prefix, fg='red')}: {error.message}", err=True)
        sys.exit(1)


def to_terminal(as_json: bool) -> bool:
    """Whether to print for a person (tables, lines) rather than JSON for a program."""
    return not as_json and sys.stdout.isatty()
