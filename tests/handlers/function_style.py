"""A module-level ``handle(requests, context)``, the TorchServe function style."""

from __future__ import annotations

from typing import Any

from podium import Context


def handle(requests: list[Any], context: Context) -> list[Any]:
    return [{"model": context.model_name, "length": len(r)} for r in requests]
