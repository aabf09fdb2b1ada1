"""TorchServe's worker protocol; Podium keeps only what handlers call."""
