"""The local backend: a batcher per version in front of a pool of worker processes,
each reached over a socketpair (``wire``)."""
