"""Where batches run. ``pending`` is what every backend hands back to the data plane;
``local/`` runs batches in worker processes on this machine."""
