"""The management commands: ``podium models``, ``register``, ``unregister``, ``scale``,
``set-default``, each a ``Client`` management call. On a terminal they print a table or
the server's status line; with ``--json``, or into a pipe, the answer as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
import orjson

from podium.cli.connection import Connection, connection_options, reported, to_terminal

if TYPE_CHECKING:
    from podium.client import Client


def management_command(command: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options and ``--json``; the command gets a ``Client``."""

    def with_client(connection: Connection, as_json: bool, **values: Any) -> None:
        from podium.client import Client

        with (
            reported(connection.debug),
            Client(management_url=connection.url, management_token=connection.token) as client,
        ):
            command(client, to_terminal(as_json), **values)

    with_client.__name__, with_client.__doc__ = command.__name__, command.__doc__
    decorated = connection_options("management")(with_client)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON, even on a terminal.")(
        decorated
    )


def show(answer: Any, terminal: bool) -> None:
    """A status answer: its line on a terminal, else the JSON."""
    if terminal and isinstance(answer, dict) and "status" in answer:
        click.echo(answer["status"])
    else:
        click.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())


@click.command()
@click.argument("model", required=False)
@click.argument("version", required=False)
@management_command
def models(client: Client, terminal: bool, model: str | None, version: str | None) -> None:
    """List models, or describe one model or version (workers, batching)."""
    if model is None:
        listed = client.models()
        if not terminal:
            show({"models": listed}, terminal)
            return
        versions = [v for entry in listed for v in client.describe(entry["modelName"])]
    else:
        versions = client.describe(model, version)
        if not terminal:
            show(versions, terminal)
            return
    from rich.console import Console
    from rich.table import Table

    table = Table("model", "version", "default", "status", "workers", "batch", "queue")
    for described in versions:
        workers = described["workers"]
        table.add_row(
            described["modelName"],
            described["modelVersion"],
            "yes" if described["default"] else "",
            str(described["status"]) + (f" ({described['error']})" if described["error"] else ""),
            f"{len(workers)} of {described['minWorkers']}..{described['maxWorkers']}",
            f"{described['batchSize']} / {described['maxBatchDelay']:g} ms",
            str(described["queueDepth"]),
        )
    Console().print(table)


@click.command()
@click.argument("archive_name")
@click.option("--model-name", help="Refuse the archive unless it holds this model.")
@click.option("--initial-workers", type=int, help="Workers to start.")
@click.option("--batch-size", type=int, help="Override the archive's batch size.")
@click.option("--max-batch-delay", type=float, help="Override the batch delay (ms).")
@management_command
def register(client: Client, terminal: bool, archive_name: str, **options: Any) -> None:
    """Load an archive of the server's model store (a file name or path inside it)."""
    show(client.register(archive_name, **options), terminal)


@click.command()
@click.argument("model")
@click.argument("version")
@management_command
def unregister(client: Client, terminal: bool, model: str, version: str) -> None:
    """Drain and unload one version of a model."""
    show(client.unregister(model, version), terminal)


@click.command()
@click.argument("model")
@click.argument("version", required=False)
@click.option("--min-workers", type=int, required=True, help="Workers to keep.")
@click.option("--max-workers", type=int, help="Workers allowed under load.")
@management_command
def scale(
    client: Client,
    terminal: bool,
    model: str,
    version: str | None,
    min_workers: int,
    max_workers: int | None,
) -> None:
    """Change a version's worker bounds live (no request is dropped)."""
    answer = client.scale(model, version, min_workers=min_workers, max_workers=max_workers)
    show(answer, terminal)


@click.command("set-default")
@click.argument("model")
@click.argument("version")
@management_command
def set_default(client: Client, terminal: bool, model: str, version: str) -> None:
    """Send requests without a version to this version."""
    show(client.set_default(model, version), terminal)
