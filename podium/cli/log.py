"""``podium log``: the prediction log's last entries for a model, read from its SQLite file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson

from podium.cli.connection import TOML, server_settings, to_terminal
from podium.observability.predictions import read_predictions


@click.command(name="log")
@click.argument("model")
@click.option(
    "--tail",
    "tail",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many of the last entries to print.",
)
@click.option("--since", help="Only entries from this ISO time on, or from this many seconds ago.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object a line (the default when stdout is not a terminal).",
)
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The prediction log (default: the server's prediction_log setting).",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PODIUM_CONFIG",
    help="The server's podium.toml (default: ./podium.toml) [env: PODIUM_CONFIG].",
)
def prediction_log(
    model: str,
    tail: int,
    since: str | None,
    as_json: bool,
    path: Path | None,
    config: Path | None,
) -> None:
    """Print the last entries the prediction log holds for MODEL, oldest first."""
    path = path or _configured(config)
    if not path.exists():  # the server creates it as it starts
        raise click.ClickException(f"no prediction log at {path}")
    try:
        entries = read_predictions(path, model, tail, _since(since))
    except sqlite3.Error as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None
    if not to_terminal(as_json):
        for entry in entries:
            sys.stdout.buffer.write(orjson.dumps(_decoded(entry)) + b"\n")
        return
    _table(entries)


def _configured(config: Path | None) -> Path:
    """The server's ``prediction_log``; relative in podium.toml: to podium.toml's folder."""
    settings = server_settings(config or TOML)
    path = settings.prediction_log
    if path is None:
        raise click.ClickException(
            "the prediction log is off: give --file, or run where the "
            "server's settings name prediction_log"
        )
    if path.is_absolute() or "PODIUM_PREDICTION_LOG" in os.environ:
        return path
    return (config or TOML).absolute().parent / path


def _since(since: str | None) -> float | None:
    """``--since``: seconds ago (a number) or an ISO time, as a Unix time."""
    if since is None:
        return None
    try:
        return time.time() - float(since)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(since).timestamp()
    except ValueError:
        raise click.BadParameter(
            "an ISO time or a number of seconds", param_hint="--since"
        ) from None


def _decoded(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry with its input and output as JSON values where they are JSON text."""
    decoded = dict(entry)
    for key in ("input", "output"):
        if isinstance(entry[key], str):
            with contextlib.suppress(orjson.JSONDecodeError):
                decoded[key] = orjson.loads(entry[key])
    return decoded


def _table(entries: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Column, Table

    columns = ("version", "protocol", "status", "ms", "input", "output")
    table = Table(Column("time", no_wrap=True), *columns)
    for entry in entries:
        latency = entry["latency"]
        table.add_row(
            datetime.fromtimestamp(entry["time"]).strftime("%Y-%m-%d %H:%M:%S"),
            entry["version"],
            entry["protocol"] or "",
            str(entry["status"]),
            f"{latency * 1000:.1f}" if latency is not None else "",
            _short(entry["input"]),
            _short(entry["output"]),
        )
    Console().print(table)


def _short(text: str | None, width: int = 80) -> str:
    if text is None:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"
