"""Exponential moving average of model weights (the weights evaluation and sampling use)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of the model whose floating tensors follow w_ema <- w_ema + (1 - d)(w - w_ema).

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the first updates, so early EMA
    weights are not dominated by the random initialization.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_t, cur_t = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.is_floating_point():
                ema_t.append(e)
                cur_t.append(m.detach())
            else:
                e.copy_(m)
        torch._foreach_lerp_(ema_t, cur_t, 1.0 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        self.module.load_state_dict(state)
        self.updates = updates
