"""Podium's stand-in for TorchServe's ``ts`` package (used when torchserve is absent)."""

__version__ = "0.12.0+podium"
