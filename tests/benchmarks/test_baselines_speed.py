"""CPU speed of the baselines (pytest-benchmark; run with --benchmark-only).

The sampler's own work per step (coefficients, the eq. 12 update, noise) must stay within
5% of the bare network forwards at 64x64, batch 8. UNet forward and train-step times at
dims 16/32/64 (64x64, batch 1) are recorded so regressions show in the saved runs.
"""

import time

import pytest
import torch

from baselines import build_method
from baselines.unet import UNet

STEPS = 2
BATCH, SIZE = 8, 64


@pytest.fixture(autouse=True)
def _benchmark_only(request):
    if not request.config.getoption("benchmark_only", False):
        pytest.skip("speed checks run only under --benchmark-only")


@pytest.fixture(scope="module")
def rddm():
    torch.manual_seed(0)
    method = build_method("rddm", unet_dim=16).eval()
    condition = torch.rand(BATCH, 3, SIZE, SIZE) * 2 - 1
    return method, condition


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _forwards(method, condition):
    inputs = torch.cat([condition, condition], dim=1)
    t = torch.full((BATCH,), 999.0)
    with torch.no_grad():
        for _ in range(STEPS):
            for net in method.networks().values():
                net(inputs, t)


def test_bare_network_forwards(benchmark, rddm):
    method, condition = rddm
    benchmark.pedantic(_forwards, args=(method, condition), rounds=3, warmup_rounds=1)


def test_sampler_overhead_within_5_percent(benchmark, rddm):
    method, condition = rddm

    def sample():
        method.sample(condition, steps=STEPS, generator=torch.Generator().manual_seed(0))

    benchmark.pedantic(sample, rounds=3, warmup_rounds=1)
    # the ratio comes from interleaved runs on one thread, fastest of each, so that both see
    # the same machine load (single medians on a shared 2-core machine vary by +-30%)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pairs = [
            (_seconds(sample), _seconds(lambda: _forwards(method, condition))) for _ in range(6)
        ]
    finally:
        torch.set_num_threads(threads)
    ratio = min(s for s, _ in pairs) / min(f for _, f in pairs)
    benchmark.extra_info["sampler_over_forward"] = ratio
    assert ratio <= 1.05


@pytest.mark.parametrize("dim", [16, 32, 64])
def test_unet_forward_cpu(benchmark, dim):
    torch.manual_seed(0)
    net = UNet(6, 3, dim=dim).eval()
    x, t = torch.randn(1, 6, SIZE, SIZE), torch.tensor([500.0])

    def forward():
        with torch.no_grad():
            net(x, t)

    benchmark.pedantic(forward, rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("dim", [16, 32, 64])
def test_unet_train_step_cpu(benchmark, dim):
    torch.manual_seed(0)
    net = UNet(6, 3, dim=dim)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    x, t, target = (
        torch.randn(1, 6, SIZE, SIZE),
        torch.tensor([500.0]),
        torch.randn(1, 3, SIZE, SIZE),
    )

    def step():
        loss = (net(x, t) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
