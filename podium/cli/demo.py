"""``podium demo``: train the bundled example, archive it, serve it."""

from __future__ import annotations

from pathlib import Path

import click

from podium.cli.console import console
from podium.settings import Settings


@click.command()
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

    from podium.cli import example
    from podium.frontends.rest import run

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
Try it:""",
        highlight=False,
    )
    # On a line of its own and never wrapped: a wrapped command pastes as two broken ones.
    console.print(curl, soft_wrap=True, highlight=False, markup=False)
    console.print("Press Ctrl-C to stop.\n", highlight=False)
    run(Settings(model_store=model_store, port=port, models=[example.EXAMPLE]))
