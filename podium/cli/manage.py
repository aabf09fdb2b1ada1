"""The management commands: ``podium models``, ``register``, ``unregister``, ``scale``,
``set-default``, each one call to the management API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson


def management_options(command: Any) -> Any:
    """--url, --token and --token-file for the management commands."""
    command = click.option(
        "--token",
        envvar="PODIUM_MANAGEMENT_TOKEN",
        help="Management token (default: read from --token-file).",
    )(command)
    command = click.option(
        "--token-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("podium-token"),
        show_default=True,
        help="File the server wrote its token to.",
    )(command)
    return click.option(
        "--url",
        "api_url",
        default="http://127.0.0.1:8081",
        show_default=True,
        envvar="PODIUM_MANAGEMENT_URL",
        help="Management API.",
    )(command)


def manage(
    method: str, path: str, api_url: str, token: str | None, token_file: Path, **params: Any
) -> None:
    """Call the management API and print its JSON answer (exit 1 on an error)."""
    import httpx

    if token is None:
        try:
            token = token_file.read_text().strip()
        except OSError:
            raise click.ClickException(f"no --token, and {token_file} is not readable") from None
    query = {key: value for key, value in params.items() if value is not None}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.request(
            method, api_url.rstrip("/") + path, params=query, headers=headers, timeout=300
        )
    except httpx.TransportError as error:
        raise click.ClickException(f"cannot reach {api_url}: {error}") from None
    click.echo(orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode())
    if response.is_error:
        sys.exit(1)


@click.command()
@click.argument("model", required=False)
@click.argument("version", required=False)
@management_options
def models(model: str | None, version: str | None, **connection: Any) -> None:
    """List models, or describe one model or version (workers, batching)."""
    path = "/models" + (f"/{model}" if model else "") + (f"/{version}" if version else "")
    manage("GET", path, **connection)


@click.command()
@click.argument("archive_name")
@click.option("--model-name", help="Refuse the archive unless it holds this model.")
@click.option("--initial-workers", type=int, help="Workers to start.")
@click.option("--batch-size", type=int, help="Override the archive's batch size.")
@click.option("--max-batch-delay", type=float, help="Override the batch delay (ms).")
@management_options
def register(archive_name: str, **options: Any) -> None:
    """Load an archive of the server's model store (a file name or path inside it)."""
    manage("POST", "/models", url=archive_name, **options)


@click.command()
@click.argument("model")
@click.argument("version")
@management_options
def unregister(model: str, version: str, **connection: Any) -> None:
    """Drain and unload one version of a model."""
    manage("DELETE", f"/models/{model}/{version}", **connection)


@click.command()
@click.argument("model")
@click.argument("version", required=False)
@click.option("--min-workers", type=int, required=True, help="Workers to keep.")
@click.option("--max-workers", type=int, help="Workers allowed under load.")
@management_options
def scale(
    model: str, version: str | None, min_workers: int, max_workers: int | None, **connection: Any
) -> None:
    """Change a version's worker bounds live (no request is dropped)."""
    path = f"/models/{model}" + (f"/{version}" if version else "")
    manage("PUT", path, **connection, min_worker=min_workers, max_worker=max_workers)


@click.command("set-default")
@click.argument("model")
@click.argument("version")
@management_options
def set_default(model: str, version: str, **connection: Any) -> None:
    """Send requests without a version to this version."""
    manage("PUT", f"/models/{model}/{version}/set-default", **connection)
