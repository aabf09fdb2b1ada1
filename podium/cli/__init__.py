"""The ``podium`` command: commands → settings → server or client.

One module per command group: ``serve`` (and the settings flags), ``archive`` (and
``inspect``), ``predict``, ``manage`` (the management API), ``log`` (the prediction
log), ``demo``.
"""

from __future__ import annotations

import click

from podium.cli.archive import archive, inspect
from podium.cli.demo import demo
from podium.cli.log import prediction_log
from podium.cli.manage import models, register, scale, set_default, unregister
from podium.cli.predict import predict
from podium.cli.serve import build_settings, serve
from podium.version import __version__

__all__ = ["build_settings", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="podium")
def main() -> None:
    """Podium: serve a trained model over HTTP with batching and worker processes."""


for command in (
    archive,
    demo,
    inspect,
    models,
    predict,
    prediction_log,
    register,
    scale,
    serve,
    set_default,
    unregister,
):
    main.add_command(command)
