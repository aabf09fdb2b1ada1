"""Protocol-free serving: the data plane, the registry of loaded versions, the store of
archives on disk, URL registration."""
