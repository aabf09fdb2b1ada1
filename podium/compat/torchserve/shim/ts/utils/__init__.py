"""``ts.utils``: helpers TorchServe handlers import."""
