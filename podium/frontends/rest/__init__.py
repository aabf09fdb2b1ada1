"""HTTP front end: the ASGI apps and how to run them."""

from podium.frontends.rest.app import PodiumApp
from podium.frontends.rest.run import run

__all__ = ["PodiumApp", "run"]
