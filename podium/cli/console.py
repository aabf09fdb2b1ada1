"""Where the CLI talks to people: stderr, so that stdout carries only results."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)
