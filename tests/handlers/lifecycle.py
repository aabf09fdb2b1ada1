"""Records the order of lifecycle calls, to check the contract from outside."""

from __future__ import annotations

from typing import Any

from podium import Context, Handler


class LifecycleHandler(Handler):
    def initialize(self, context: Context) -> None:
        super().initialize(context)
        self.calls = [f"initialize:{context.model_name}/{context.model_version}"]

    def preprocess(self, requests: list[Any]) -> list[Any]:
        self.calls.append("preprocess")
        return [r["x"] for r in requests]

    def inference(self, batch: list[Any]) -> list[Any]:
        self.calls.append("inference")
        return [x * 10 for x in batch]

    def postprocess(self, outputs: list[Any]) -> list[Any]:
        self.calls.append("postprocess")
        trace = list(self.calls)
        return [{"y": y, "calls": trace} for y in outputs]
