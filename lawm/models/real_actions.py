"""What every model that reads real actions shares: it sees them at unit scale."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class TakesRealActions(nn.Module):
    """Base of the models with real-action inputs (world model, controllers).

    Actions are divided by `action_scale`, the training data's per-dimension std
    (`lawm.dynamics.ActionSpace.scale`), so every dimension arrives at unit scale. The scale is a
    buffer, so a saved model carries the unit it was trained in.
    """

    def __init__(self, action_scale: Sequence[float]):
        super().__init__()
        self.register_buffer("action_scale", torch.tensor(list(action_scale), dtype=torch.float32))

    def unit_actions(self, actions: Tensor) -> Tensor:
        """Real actions [..., A] -> the same at unit scale [..., A]."""
        return actions / self.action_scale
