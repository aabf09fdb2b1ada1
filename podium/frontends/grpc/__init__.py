"""gRPC front end: the Open Inference Protocol's ``GRPCInferenceService`` on its own port.

    service   the six RPCs, each a thin adapter to the data plane (bytes in, bytes out)
    server    the grpc.aio server that carries them: options, binding, start and drain

It stands beside the HTTP front end (``podium.frontends.rest``), never on it: ``podium
serve`` starts both on one event loop and the same data plane. Importing it imports
grpcio, which is the ``podium[grpc]`` extra.
"""

from podium.frontends.grpc.server import GrpcServer

__all__ = ["GrpcServer"]
