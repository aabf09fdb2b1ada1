"""TorchServe compatibility: its handlers run unchanged (``handler``, ``context``, the
``ts`` stand-in in ``shim/``), and its ``config.properties`` is read (``config``)."""
