"""``ts.context``: the context object given to a TorchServe handler."""

from podium.compat.torchserve.context import Context, RequestProcessor

__all__ = ["Context", "RequestProcessor"]
