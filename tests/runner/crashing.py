"""Cell functions whose worker process dies, for tests/runner/test_executors.py.

Executors import these by name in fresh processes, so the failure is injected there and
nowhere else: no switch in the harness itself.
"""

from __future__ import annotations

import os

from bench.runner import train
from bench.runner.execute import run_cell

EXIT_CODE = 3


def run_cell_or_die(cell, context):
    """``run_cell``, except that seed 1's process exits abruptly at its second backward and
    seed 2's before its cell begins."""
    if cell.seed == 2:
        os._exit(EXIT_CODE)
    if cell.seed == 1:
        calls = 0
        original = train.NetworkClock.backward

        def die(self, loss):
            nonlocal calls
            calls += 1
            if calls == 2:
                os._exit(EXIT_CODE)  # no cleanup, no exception: as if killed
            original(self, loss)

        train.NetworkClock.backward = die
    return run_cell(cell, context)
