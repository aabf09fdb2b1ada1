"""Front ends: thin adapters from a transport to the data plane (``rest/``)."""
