"""HTTP front end: the ASGI apps and how to run them."""

from podium.server.app import PodiumApp
from podium.server.run import run

__all__ = ["PodiumApp", "run"]
