"""``podium predict``: one request to a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from podium.cli.connection import Connection, connection_options, reported


@click.command()
@click.argument("model")
@click.option("--data", required=True, help="JSON text, or @FILE (JSON, or raw bytes if not JSON).")
@click.option("--version", "version", help="Model version (default: the model's default).")
@click.option(
    "--stream", is_flag=True, help="Print the answer's parts as they arrive, one JSON line each."
)
@click.option(
    "--v2",
    is_flag=True,
    help='Speak KServe V2: --data maps input names to arrays or texts ({"x": [[0.5, 1]]}); '
    "prints the output tensors by name.",
)
@connection_options("inference")
def predict(
    model: str, data: str, version: str | None, stream: bool, v2: bool, connection: Connection
) -> None:
    """Send one request to a running server and print the answer."""
    from podium.client import Client

    payload = _payload(data)
    if v2 and (stream or not isinstance(payload, dict) or not payload):
        raise click.BadParameter(
            "with --v2, a JSON object of input names to values (and no --stream)",
            param_hint="--data",
        )
    answer: Any
    with reported(connection.debug), Client(connection.url, token=connection.token) as client:
        if v2:
            try:
                tensors = client.infer(model, payload, version=version)
            except ValueError as error:  # --v2 inputs that are no tensor
                raise click.BadParameter(str(error), param_hint="--data") from None
            answer = {name: array.tolist() for name, array in tensors.items()}
        elif stream:  # one line per part, as it arrives
            for part in client.stream(model, payload, version=version):
                line = part if isinstance(part, bytes) else orjson.dumps(part) + b"\n"
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            return
        else:
            answer = client.predict(model, payload, version=version)
    sys.stdout.buffer.write(
        answer if isinstance(answer, bytes) else orjson.dumps(answer, option=orjson.OPT_INDENT_2)
    )
    sys.stdout.write("\n")


def _payload(data: str) -> Any:
    """``--data``: JSON text, or a file's JSON, or a file's bytes."""
    if not data.startswith("@"):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise click.BadParameter(
                "not valid JSON (use @FILE for raw bytes)", param_hint="--data"
            ) from None
    try:
        raw = Path(data[1:]).read_bytes()
    except OSError as error:
        raise click.BadParameter(
            f"cannot read {data[1:]}: {error.strerror}", param_hint="--data"
        ) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
