"""Exponential moving average of weights, as the RDDM template uses it.

The template (ema-pytorch 0.0.10 defaults) keeps beta = 0.995, updates every 10
steps, copies the weights until ``update_after_step`` (100), then warms the decay up
as 1 - (1 + k)^(-2/3) with k = step - update_after_step - 1, capped at beta
(docs/methods.md §6). The decay is a function of the iteration alone, so resuming needs
only the averaged weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Averages the weights of ``model``, the module being trained.

    The tensor lists are taken once: walking the module tree for them on every step cost
    more than the update itself (about 10 ms per step on the smoke UNets). Loading a
    state dict copies in place, so the lists stay valid across a resume; create the EMA
    after the model is on its device (moving it replaces its buffers).
    """

    def __init__(
        self, model: nn.Module, decay: float, every: int, start: int, power: float = 2 / 3
    ):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.every, self.start, self.power = decay, every, start, power
        self._averaged = list(self.model.parameters())
        self._copied = list(self.model.buffers())
        self._source_averaged = list(model.parameters())
        self._source_copied = list(model.buffers())

    def decay_at(self, iteration: int) -> float:
        k = iteration - self.start - 1
        if k <= 0:
            return 0.0
        return min(self.decay, 1 - (1 + k) ** -self.power)

    @torch.no_grad()
    def step(self, iteration: int) -> None:
        """Call after the optimizer step of ``iteration`` (1-based)."""
        if iteration % self.every:
            return
        if iteration <= self.start:
            torch._foreach_copy_(self._averaged, self._source_averaged)
        else:
            torch._foreach_lerp_(
                self._averaged, self._source_averaged, 1 - self.decay_at(iteration)
            )
        if self._copied:
            torch._foreach_copy_(self._copied, self._source_copied)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
