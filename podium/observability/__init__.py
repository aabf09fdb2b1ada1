"""What the request path counts (``stats``) and its Prometheus export (``prometheus``)."""
