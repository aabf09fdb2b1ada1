"""``podium archive`` (build, or convert a .mar) and ``podium inspect``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from podium.archive import (
    BUILTIN_HANDLERS,
    MAR_SUFFIX,
    SUFFIX,
    Manifest,
    collect_files,
    pack,
    verify,
)
from podium.cli.archive_checks import check_archive, refuse_existing
from podium.cli.console import console
from podium.cli.options import SeveralValues, SeveralValuesCommand
from podium.errors import ArchiveError, PodiumError
from podium.handlers.frameworks import MODEL_HANDLERS, check_model, detect_handler


class Refused(click.ClickException):
    """A model ``podium archive`` can tell would not load: one line, and a usage error's
    exit status (2)."""

    exit_code = 2


@click.command(cls=SeveralValuesCommand)
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
    type=click.Path(path_type=Path),
    help="Serialized model file, or a transformers model folder.",
)
@click.option(
    "--extra-files",
    cls=SeveralValues,
    type=click.Path(exists=True, path_type=Path),
    metavar="PATH...",
    help="Extra files or folders: several after one flag (--extra-files a b), "
    "comma-separated (a,b), or the flag repeated.",
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
    help="JSON file with an example request (kept in the manifest; see --check).",
)
@click.option(
    "--check/--no-check",
    default=None,
    help="Load the model as a worker does and run --example through the handler; refuse "
    "if it fails. Default: only when cheap (an sklearn, onnx or own handler, files up to "
    "64 MiB). --no-check also skips importing the handler.",
)
@click.option("--force", is_flag=True, help="Replace an existing NAME-VERSION.podium.")
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
    check: bool | None,
    force: bool,
    output: Path,
    **settings: Any,
) -> None:
    """Build an archive from a model file, a handler and extra files (or --from-mar).

    A built-in handler's options (a transformers folder's model_dir and task) come from
    --model, whether --handler is named or detected; --option wins over them. A model that
    cannot load (a handler that contradicts it, a missing or unknown model file, a
    transformers folder without config.json, weights or tokenizer) is refused, and so are a
    handler that does not import or is not there, --labels that do not count the model's
    classes, an --example the handler fails (see --check) and an existing archive (unless
    --force). NAME goes before --extra-files or after another option: the files run to the
    next option.
    """
    if from_mar is not None:
        overrides = {k: v for k, v in settings.items() if v is not None}
        _convert(from_mar, name, output, overrides, force)
        return
    if name is None:
        raise click.UsageError(
            "name the model (NAME, before --extra-files or after another option), "
            "or convert one with --from-mar"
        )
    explicit = _parse_options(options)
    try:
        files, handler_spec, handler_options = _archive_inputs(
            handler, model, extra_files, explicit
        )
    except ArchiveError as error:
        raise Refused(error.message) from None
    try:
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
            options=handler_options,
            **{k: v for k, v in settings.items() if v is not None},
        )
    except PodiumError as error:
        raise click.ClickException(error.message) from None
    except (ValueError, orjson.JSONDecodeError) as error:
        raise click.ClickException(str(error).splitlines()[0]) from None
    try:
        refuse_existing(output / f"{manifest.name}-{manifest.version}{SUFFIX}", force)
        check_archive(manifest, files, check)
    except ArchiveError as error:
        raise Refused(error.message) from None
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        total = sum(p.stat().st_size for p in files.values()) or 1
        task = progress.add_task("archiving", total=total)
        target = pack(manifest, files, output, on_file=lambda _, size: progress.advance(task, size))
    click.echo(str(target))


def _convert(
    mar_path: Path, name: str | None, output: Path, overrides: dict[str, Any], force: bool
) -> None:
    from podium.archive import mar

    try:
        manifest = mar.read_manifest(mar_path)
        if name is not None and name != manifest.name:
            raise click.UsageError(f"{mar_path.name} holds model {manifest.name!r}, not {name!r}")
        version = overrides.get("version", manifest.version)
        try:
            refuse_existing(output / f"{manifest.name}-{version}{SUFFIX}", force)
        except ArchiveError as error:
            raise Refused(error.message) from None
        target = mar.convert(mar_path, output, overrides=overrides)
    except PodiumError as error:
        raise click.ClickException(error.message) from None
    click.echo(str(target))


def _archive_inputs(
    handler: str | None,
    model: Path | None,
    extra_files: tuple[Path, ...],
    explicit: dict[str, Any],
) -> tuple[dict[str, Path], str, dict[str, Any]]:
    """Files to pack, the manifest's handler, and its options: those the model implies,
    then the explicit ones. ArchiveError for a model the built-in handler cannot load."""
    files: dict[str, Path] = {}
    implied: dict[str, Any] = {}
    if handler is None:
        if model is None:
            raise click.UsageError("name a --handler, or a --model to detect it from")
        handler, implied = detect_handler(model)
    elif handler in MODEL_HANDLERS and model is not None:
        handler, implied = detect_handler(model, handler)
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
    options = {**implied, **explicit}
    if handler in MODEL_HANDLERS:
        check_model(handler, model, options, files)
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


@click.command()
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
