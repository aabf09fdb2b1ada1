"""``python -m podium.cli`` runs the ``podium`` command."""

from podium.cli import main

main()
