"""The ``podium`` command: commands → settings → server or client."""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import click
import orjson
from pydantic.fields import FieldInfo
from rich.console import Console

from podium import __version__
from podium.archive import (
    BUILTIN_HANDLERS,
    MAR_SUFFIX,
    Manifest,
    collect_files,
    detect_handler,
    pack,
    verify,
)
from podium.errors import ArchiveError, PodiumError
from podium.settings import Settings

console = Console(stderr=True)


def settings_options(command: Any) -> Any:
    """Add one option per ``Settings`` field, so options are declared once (there)."""
    for name, field in reversed(list(Settings.model_fields.items())):
        if typing.get_origin(field.annotation) is dict:
            continue  # per-model tables: podium.toml, PODIUM_* JSON, or --ts-config
        command = click.option(*_flag(name, field), **_option(field))(command)
    return command


def _flag(name: str, field: FieldInfo) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if field.annotation is bool:
        return [f"{flag}/--no-{flag[2:]}", name]
    return [flag, name]


def _option(field: FieldInfo) -> dict[str, Any]:
    annotation = field.annotation
    options: dict[str, Any] = {"default": None, "help": field.description, "show_default": False}
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


def build_settings(values: dict[str, Any], ts_config: Path | None = None) -> Settings:
    """Flags given on the command line win over a TorchServe config.properties, which wins
    over PODIUM_* variables and podium.toml."""
    given = {k: v for k, v in values.items() if v is not None and v != ()}
    if ts_config is not None:
        from podium.torchserve_config import read_settings

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
        return Settings(**given)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="podium")
def main() -> None:
    """Podium: serve a trained model over HTTP with batching and worker processes."""


@main.command()
@settings_options
@click.option(
    "--ts-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TorchServe config.properties to read (flags given here win over it).",
)
def serve(ts_config: Path | None, **values: Any) -> None:
    """Serve the models of a model store."""
    from podium.server import run

    settings = build_settings(values, ts_config)
    if not settings.model_store.is_dir():
        raise click.ClickException(f"model store {settings.model_store} is not a folder")
    run(settings)


@main.command()
@click.argument("name", required=False)
@click.option(
    "--from-mar",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Convert this TorchServe .mar (adding a sha256 per file) instead of building.",
)
@click.option("--version", "version", help="Model version (default 1.0; a .mar keeps its own).")
@click.option(
    "--handler",
    help=f"Built-in ({', '.join(BUILTIN_HANDLERS)}) or FILE.py[:Class]; "
    "detected from --model when omitted.",
)
@click.option(
    "--model",
    "model",
    type=click.Path(exists=True, path_type=Path),
    help="Serialized model file, or a transformers model folder.",
)
@click.option(
    "--extra-files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Extra files or folders (repeat).",
)
@click.option(
    "--requirements",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="requirements.txt for the model.",
)
@click.option("--batch-size", type=int, help="Largest batch.")
@click.option(
    "--max-batch-delay", type=float, help="Milliseconds to wait for a batch (fixed policy)."
)
@click.option("--batching", type=click.Choice(["adaptive", "fixed"]), help="Batching policy.")
@click.option("--min-workers", type=int, help="Workers started with the model.")
@click.option("--max-workers", type=int, help="Most workers the model may have.")
@click.option("--labels", help="Comma-separated class labels, by class index.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Handler option (VALUE as JSON if it parses, else text); repeat.",
)
@click.option(
    "--warmup",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file with a list of requests each worker runs before it is ready.",
)
@click.option(
    "--example",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file with an example request.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("model_store"),
    show_default=True,
    help="Folder to write the archive into.",
)
def archive(
    name: str | None,
    from_mar: Path | None,
    handler: str | None,
    model: Path | None,
    extra_files: tuple[Path, ...],
    requirements: Path | None,
    example: Path | None,
    warmup: Path | None,
    labels: str | None,
    options: tuple[str, ...],
    output: Path,
    **settings: Any,
) -> None:
    """Build an archive from a model file, a handler and extra files (or --from-mar)."""
    if from_mar is not None:
        _convert(from_mar, name, output, {k: v for k, v in settings.items() if v is not None})
        return
    if name is None:
        raise click.UsageError("name the model (NAME), or convert one with --from-mar")
    try:
        files, handler_spec, handler_options = _archive_inputs(handler, model, extra_files)
        if requirements is not None:
            files[requirements.name] = requirements
        manifest = Manifest(
            name=name,
            handler=handler_spec,
            model_file=model.name if model else None,
            requirements=requirements.name if requirements else None,
            labels=labels.split(",") if labels else None,
            example=orjson.loads(example.read_bytes()) if example else None,
            warmup=orjson.loads(warmup.read_bytes()) if warmup else [],
            options={**handler_options, **_parse_options(options)},
            **{k: v for k, v in settings.items() if v is not None},
        )
    except PodiumError as error:
        raise click.ClickException(error.message) from None
    except (ValueError, orjson.JSONDecodeError) as error:
        raise click.ClickException(str(error).splitlines()[0]) from None
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        total = sum(p.stat().st_size for p in files.values()) or 1
        task = progress.add_task("archiving", total=total)
        target = pack(manifest, files, output, on_file=lambda _, size: progress.advance(task, size))
    click.echo(str(target))


def _convert(mar_path: Path, name: str | None, output: Path, overrides: dict[str, Any]) -> None:
    from podium import mar

    try:
        manifest = mar.read_manifest(mar_path)
        if name is not None and name != manifest.name:
            raise click.UsageError(f"{mar_path.name} holds model {manifest.name!r}, not {name!r}")
        target = mar.convert(mar_path, output, overrides=overrides)
    except PodiumError as error:
        raise click.ClickException(error.message) from None
    click.echo(str(target))


def _archive_inputs(
    handler: str | None, model: Path | None, extra_files: tuple[Path, ...]
) -> tuple[dict[str, Path], str, dict[str, Any]]:
    """Files to pack, the manifest's handler, and options implied by the model."""
    files: dict[str, Path] = {}
    options: dict[str, Any] = {}
    if handler is None:
        if model is None:
            raise click.UsageError("name a --handler, or a --model to detect it from")
        handler, options = detect_handler(model)
    if handler not in BUILTIN_HANDLERS:
        file_name, _, class_name = handler.partition(":")
        handler_path = Path(file_name)
        if not handler_path.is_file():
            raise click.BadParameter(
                f"{file_name} is neither a built-in handler nor a file", param_hint="--handler"
            )
        files[handler_path.name] = handler_path
        handler = handler_path.name + (f":{class_name}" if class_name else "")
    if model is not None:
        files.update(collect_files([model]))
    files.update(collect_files(extra_files))
    return files, handler, options


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def inspect(path: Path) -> None:
    """Print an archive's manifest and verify every file's hash."""
    try:
        manifest = verify(path)
    except ArchiveError as error:
        console.print(f"[red]error:[/red] {error.message}", highlight=False)
        sys.exit(1)
    click.echo(manifest.model_dump_json(indent=2))
    if path.suffix == MAR_SUFFIX:
        console.print(
            "[green]ok:[/green] a TorchServe .mar: structure and checksums verified, "
            "no hashes to check (podium archive --from-mar adds them)"
        )
        return
    console.print(f"[green]ok:[/green] {len(manifest.files)} files verified")


@main.command()
@click.argument("model")
@click.option("--data", required=True, help="JSON text, or @FILE (JSON, or raw bytes if not JSON).")
@click.option("--version", "version", help="Model version (default: the model's default).")
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, envvar="PODIUM_URL")
@click.option("--stream", is_flag=True, help="Print the answer's parts as they arrive, as is.")
def predict(model: str, data: str, version: str | None, url: str, stream: bool) -> None:
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
    try:
        with Client(url) as client:
            if stream:
                for part in client.stream(model, payload, version=version):
                    sys.stdout.buffer.write(part)
                    sys.stdout.flush()
                return
            answer = client.predict(model, payload, version=version)
    except PodiumError as error:
        console.print(f"[red]error {error.status}:[/red] {error.message}", highlight=False)
        sys.exit(1)
    except OSError as error:
        raise click.ClickException(f"cannot reach {url}: {error}") from None
    sys.stdout.buffer.write(
        answer if isinstance(answer, bytes) else orjson.dumps(answer, option=orjson.OPT_INDENT_2)
    )
    sys.stdout.write("\n")


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


@main.command()
@click.argument("model", required=False)
@click.argument("version", required=False)
@management_options
def models(model: str | None, version: str | None, **connection: Any) -> None:
    """List models, or describe one model or version (workers, batching)."""
    path = "/models" + (f"/{model}" if model else "") + (f"/{version}" if version else "")
    manage("GET", path, **connection)


@main.command()
@click.argument("archive_name")
@click.option("--model-name", help="Refuse the archive unless it holds this model.")
@click.option("--initial-workers", type=int, help="Workers to start.")
@click.option("--batch-size", type=int, help="Override the archive's batch size.")
@click.option("--max-batch-delay", type=float, help="Override the batch delay (ms).")
@management_options
def register(archive_name: str, **options: Any) -> None:
    """Load an archive of the server's model store (a file name or path inside it)."""
    manage("POST", "/models", url=archive_name, **options)


@main.command()
@click.argument("model")
@click.argument("version")
@management_options
def unregister(model: str, version: str, **connection: Any) -> None:
    """Drain and unload one version of a model."""
    manage("DELETE", f"/models/{model}/{version}", **connection)


@main.command()
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


@main.command("set-default")
@click.argument("model")
@click.argument("version")
@management_options
def set_default(model: str, version: str, **connection: Any) -> None:
    """Send requests without a version to this version."""
    manage("PUT", f"/models/{model}/{version}/set-default", **connection)


@main.command()
@click.option(
    "--model-store",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("model_store"),
    show_default=True,
)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The real NSMC ratings_train.txt instead of the bundled sample.",
)
def demo(model_store: Path, port: int, data: Path | None) -> None:
    """Train the bundled sentiment example, archive it, and serve it."""
    import tempfile

    from rich.progress import Progress, SpinnerColumn, TextColumn

    from podium import demo as example
    from podium.server import run

    with (
        tempfile.TemporaryDirectory() as build,
        Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as progress,
    ):
        task = progress.add_task("training the NSMC sentiment example")
        archive_path = example.build(
            model_store, Path(build), lambda line: progress.update(task, description=line), data
        )
        progress.update(task, description=f"archived {archive_path}")
    base = f"http://127.0.0.1:{port}"
    body = '{"text": "정말 재밌게 잘봤습니다!"}'
    curl = f"curl -s {base}/predict -H 'Content-Type: application/json' -d '{body}'"
    console.print(
        f"""
[bold]Podium demo[/bold]: {example.EXAMPLE} from {model_store}/
  API docs   {base}/docs
  health     {base}/ping
Try it:
  {curl}
Press Ctrl-C to stop.
""",
        highlight=False,
    )
    run(Settings(model_store=model_store, port=port, models=[example.EXAMPLE]))


if __name__ == "__main__":
    main()
