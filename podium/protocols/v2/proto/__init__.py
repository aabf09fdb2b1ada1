"""The V2 gRPC service's protobuf definition (``grpc_service.proto``) and the Python modules
generated from it by ``scripts/generate_grpc``; edit the .proto, never the modules."""
