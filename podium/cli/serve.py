"""``podium serve`` and the settings flags: one option per ``Settings`` field."""

from __future__ import annotations

import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

import click
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import SettingsConfigDict

from podium.cli.console import console
from podium.errors import PodiumError
from podium.settings import Settings


def settings_options(command: Any) -> Any:
    """Add one option per ``Settings`` field, so options are declared once (there)."""
    for name, field in reversed(list(Settings.model_fields.items())):
        if typing.get_origin(field.annotation) is dict:
            continue  # per-model tables: podium.toml, PODIUM_* JSON, or --ts-config
        command = click.option(*_flag(name, field), **_option(name, field))(command)
    return command


def _flag(name: str, field: FieldInfo) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if field.annotation is bool:
        return [f"{flag}/--no-{flag[2:]}", name]
    return [flag, name]


def _help(name: str, field: FieldInfo) -> str:
    """The field's description as plain text, with its default and environment variable
    (the option itself defaults to None: unset flags leave the other sources to decide)."""
    text = (field.description or "").replace("``", "")
    shown = []
    default = field.default
    if default is not None and default is not PydanticUndefined and default not in ([], {}):
        if isinstance(default, bool):
            default = f"--{name.replace('_', '-')}" if default else f"--no-{name.replace('_', '-')}"
        shown.append(f"default: {default}")
    shown.append(f"env: PODIUM_{name.upper()}")
    return f"{text} [{'; '.join(shown)}]"


def _option(name: str, field: FieldInfo) -> dict[str, Any]:
    annotation = field.annotation
    options: dict[str, Any] = {"default": None, "help": _help(name, field), "show_default": False}
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0] if len(args) == 1 else annotation
        args = list(typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        options["multiple"] = True
        options["default"] = None
    elif typing.get_origin(annotation) is Literal:
        options["type"] = click.Choice([str(a) for a in args])
    elif annotation in (int, float, str, bool):
        options["type"] = annotation
    elif annotation is Path:
        options["type"] = click.Path(path_type=Path)
    return options


def build_settings(
    values: dict[str, Any], ts_config: Path | None = None, config: Path | None = None
) -> Settings:
    """Flags given on the command line win over a TorchServe config.properties, which wins
    over PODIUM_* variables and podium.toml (``config``, else ./podium.toml)."""
    given = {k: v for k, v in values.items() if v is not None and v != ()}
    if ts_config is not None:
        from podium.compat.torchserve.config import read_settings

        try:
            translated, ignored = read_settings(ts_config)
        except PodiumError as error:
            raise click.ClickException(error.message) from None
        if ignored:
            console.print(
                f"[yellow]warning:[/yellow] {ts_config.name}: Podium ignores " + "; ".join(ignored),
                highlight=False,
            )
        given = {**translated, **given}
    try:
        if config is None:
            return Settings(**given)
        return configured(config)(**{**config_paths(config), **given})
    except ValueError as error:
        raise click.ClickException(str(error)) from None


def configured(config: Path) -> type[Settings]:
    """``Settings`` reading its podium.toml from ``config``."""

    class ConfiguredSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config})

    return ConfiguredSettings


def config_paths(config: Path) -> dict[str, Path]:
    """The folders and files a podium.toml names, relative to its own folder (as if the
    server ran there; the CLI's commands find the token file the same way), unless a
    PODIUM_* variable sets them; ``token_file`` defaults to one beside podium.toml."""
    try:
        table = tomllib.loads(config.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise click.ClickException(f"{config}: {error}") from None
    folder = config.absolute().parent
    found: dict[str, Path] = {"token_file": folder / Settings.model_fields["token_file"].default}
    for name, field in Settings.model_fields.items():
        if f"PODIUM_{name.upper()}" in os.environ or name not in table:
            continue
        if Path in (field.annotation, *typing.get_args(field.annotation)):
            path = Path(str(table[name]))
            found[name] = path if path.is_absolute() else folder / path
    if "PODIUM_TOKEN_FILE" in os.environ:
        found.pop("token_file")
    return found


@click.command()
@settings_options
@click.option(
    "--ts-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TorchServe config.properties to read (flags given here win over it).",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PODIUM_CONFIG",
    help="The podium.toml to read (paths in it are relative to its folder) "
    "[default: ./podium.toml; env: PODIUM_CONFIG].",
)
def serve(ts_config: Path | None, config: Path | None, **values: Any) -> None:
    """Serve the models of a model store."""
    from podium.frontends.rest import run

    settings = build_settings(values, ts_config, config)
    if not settings.model_store.is_dir():
        raise click.ClickException(f"model store {settings.model_store} is not a folder")
    run(settings)
