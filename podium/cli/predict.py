"""``podium predict``: one request to a running server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from podium.cli.console import console
from podium.errors import PodiumError


@click.command()
@click.argument("model")
@click.option("--data", required=True, help="JSON text, or @FILE (JSON, or raw bytes if not JSON).")
@click.option("--version", "version", help="Model version (default: the model's default).")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, envvar="PODIUM_URL")
@click.option(
    "--stream", is_flag=True, help="Print the answer's parts as they arrive, one JSON line each."
)
@click.option(
    "--v2",
    is_flag=True,
    help='Speak KServe V2: --data maps input names to arrays or texts ({"x": [[0.5, 1]]}); '
    "prints the output tensors by name.",
)
def predict(model: str, data: str, version: str | None, url: str, stream: bool, v2: bool) -> None:
    """Send one request to a running server and print the answer."""
    from podium.client import Client

    payload: Any
    raw = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if not data.startswith("@"):
            raise click.BadParameter(
                "not valid JSON (use @FILE for raw bytes)", param_hint="--data"
            ) from None
        payload = raw
    if v2 and (stream or not isinstance(payload, dict) or not payload):
        raise click.BadParameter(
            "with --v2, a JSON object of input names to values (and no --stream)",
            param_hint="--data",
        )
    try:
        with Client(url) as client:
            if v2:
                tensors = client.infer(model, payload, version=version)
                answer = {name: array.tolist() for name, array in tensors.items()}
            elif stream:  # one line per part, as it arrives
                for part in client.stream(model, payload, version=version):
                    sys.stdout.buffer.write(
                        part if isinstance(part, bytes) else orjson.dumps(part) + b"\n"
                    )
                    sys.stdout.flush()
                return
            else:
                answer = client.predict(model, payload, version=version)
    except PodiumError as error:
        console.print(f"[red]error {error.status}:[/red] {error.message}", highlight=False)
        sys.exit(1)
    except OSError as error:
        raise click.ClickException(f"cannot reach {url}: {error}") from None
    except ValueError as error:  # --v2 inputs that are no tensor
        raise click.BadParameter(str(error), param_hint="--data") from None
    sys.stdout.buffer.write(
        answer if isinstance(answer, bytes) else orjson.dumps(answer, option=orjson.OPT_INDENT_2)
    )
    sys.stdout.write("\n")
