"""Exponential moving average of weights, as the RDDM template uses it.

The template (ema-pytorch 0.0.10 defaults) keeps beta = 0.995, updates every 10
steps, copies the weights until ``update_after_step`` (100), then warms the decay up
as 1 - (1 + k)^(-2/3) with k = step - update_after_step - 1, capped at beta
(methods.md §6). The decay is a function of the iteration alone, so resuming needs
only the averaged weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(
        self, model: nn.Module, decay: float, every: int, start: int, power: float = 2 / 3
    ):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.every, self.start, self.power = decay, every, start, power

    def decay_at(self, iteration: int) -> float:
        k = iteration - self.start - 1
        if k <= 0:
            return 0.0
        return min(self.decay, 1 - (1 + k) ** -self.power)

    @torch.no_grad()
    def step(self, model: nn.Module, iteration: int) -> None:
        """Call after the optimizer step of ``iteration`` (1-based)."""
        if iteration % self.every:
            return
        if iteration <= self.start:
            self.model.load_state_dict(model.state_dict())
            return
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - self.decay_at(iteration))
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
