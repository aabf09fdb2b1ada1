"""``ts.context``: the context object given to a TorchServe handler."""

from podium.handlers.torchserve_context import Context, RequestProcessor

__all__ = ["Context", "RequestProcessor"]
