"""Compatibility with other model servers."""
