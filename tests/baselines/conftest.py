"""Baselines tests run tiny networks, where one thread beats two (no oversubscription when
other jobs share the cores). The previous setting is restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
