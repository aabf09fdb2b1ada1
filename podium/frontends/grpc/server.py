"""The grpc.aio server that carries the ``GRPCInferenceService`` on the gRPC port.

Created and started inside the running event loop (grpc.aio binds a server to the loop it
is made in), on the same loop as the HTTP front end; stopped first at shutdown, so that
calls in flight are answered before the workers stop.
"""

from __future__ import annotations

from typing import Any

import grpc

from podium.core.dataplane import DataPlane
from podium.frontends.grpc.service import InferenceService
from podium.settings import Settings

SERVICE = "inference.GRPCInferenceService"


class GrpcServer:
    """The gRPC front end on ``settings.host`` and ``settings.grpc_port``.

    Messages are limited as HTTP bodies and answers are: a request over ``max_body_bytes``
    is refused by grpcio (``RESOURCE_EXHAUSTED``) before it is parsed.
    """

    def __init__(self, dataplane: DataPlane, settings: Settings, token: str | None) -> None:
        self.service = InferenceService(dataplane, settings.max_body_bytes, token)
        self.address = address(settings.host, settings.grpc_port)
        self.options = [
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            # Room for the message's framing around an answer at the limit: the data plane
            # has refused larger answers already.
            ("grpc.max_send_message_length", settings.max_response_bytes + 64 * 1024),
            # grpcio shares ports between processes by default; a second server on a port
            # in use must fail rather than take half its connections.
            ("grpc.so_reuseport", 0),
        ]
        self._server: Any = None

    async def start(self) -> None:
        """Bind and start serving; ``SystemExit`` when the port cannot be bound."""
        server = grpc.aio.server(options=self.options)
        # No (de)serializers: each method takes and returns bytes (see ``service``).
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(method)
            for name, method in self.service.methods().items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        try:
            server.add_insecure_port(self.address)
        except RuntimeError:  # grpcio says no more than that the bind failed
            raise SystemExit(
                f"cannot listen on {self.address} for gRPC: the address is in use or not local"
            ) from None
        await server.start()
        self._server = server

    async def stop(self, grace: float) -> None:
        """Refuse new calls and wait up to ``grace`` seconds for those in flight (the data
        plane answers them ``ShuttingDown`` at ``drain_timeout``), then cancel the rest."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


def address(host: str, port: int) -> str:
    """``host:port`` as grpcio wants it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
