"""Front ends: thin adapters from a transport to the data plane: ``rest/`` (HTTP) and
``grpc/`` (the V2 gRPC service). The gRPC one never imports the REST one; the REST
``run`` starts it on the same event loop."""
