"""The digits network: 64 pixel values (0 to 16, as ``load_digits`` gives them) → 10 logits.

Shipped in the torch archive next to ``model.safetensors`` for the eager path; the
``torch`` handler imports it and builds ``DigitsNet(**model_kwargs)``.
"""

from __future__ import annotations

import torch
from torch import nn

PIXELS = 64
CLASSES = 10


class DigitsNet(nn.Module):
    """A small MLP; it scales its input itself, so requests carry raw 0-16 pixel values."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = nn.Linear(PIXELS, hidden)
        self.out = nn.Linear(hidden, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x / 16.0)))
