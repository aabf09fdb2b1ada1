"""Clients for a Podium server (httpx): ``Client`` blocks, ``AsyncClient`` is awaited.

>>> from podium import Client
>>> Client("http://127.0.0.1:8080").predict("nsmc_sentiment", {"text": "재밌다"})
{'label': 'positive', 'confidence': 0.93}
>>> Client().infer("nsmc_sentiment", {"text": ["재밌다"]})      # KServe V2, numpy out
{'label': array(['positive'], dtype=object), 'confidence': array([0.93])}
>>> Client(management_token="...").scale("nsmc_sentiment", min_workers=2)
{'status': 'Scaled nsmc_sentiment/1.0 to 2..2 workers'}

Both build their requests and read their answers through ``calls`` (KServe V2 bodies
through ``v2``), so they differ only in how they send.
"""

from podium.client.asynchronous import AsyncClient
from podium.client.synchronous import Client

__all__ = ["AsyncClient", "Client"]
