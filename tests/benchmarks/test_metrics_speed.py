"""Images per second of the full `istd` protocol at 256x256 on CPU, against scikit-image.

Both sides compute the same quantities per image: PSNR and SSIM on ALL / S / NS, LAB MAE
per region, and LPIPS (the same lpips model; scikit-image has none). Run with
``python -m pytest tests/benchmarks --benchmark-only``; images/s = N / median.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
from weights_factory import write_random_alexnet  # noqa: E402

from bench.metrics.perceptual import Lpips  # noqa: E402
from bench.protocols import get_protocol  # noqa: E402

N = 8


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_weights")
    write_random_alexnet(folder)
    return folder


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 256, (N, 3, 256, 256), generator=g, dtype=torch.uint8)
    noise = torch.randint(-12, 13, target.shape, generator=g)
    pred = (target.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)
    mask = torch.zeros((N, 1, 256, 256), dtype=torch.uint8)
    mask[..., 64:192, 32:160] = 255
    return pred, target, mask


@pytest.fixture(scope="module")
def batch():
    return _batch()


def _fresh_batches():
    """Setup for each round: images never scored before, so LPIPS's memo (which answers the
    same images asked again, bench.metrics.perceptual) cannot shorten a round."""
    seeds = iter(range(1, 1000))
    return lambda: (_batch(next(seeds)), {})


def _report(benchmark, label):
    images_per_second = N / benchmark.stats.stats.median
    benchmark.extra_info["images_per_second"] = round(images_per_second, 2)
    print(f"\n{label}: {images_per_second:.2f} images/s")


def test_istd_protocol_batched(benchmark, weights_dir, batch):
    protocol = get_protocol("istd", weights_dir)
    protocol.evaluate(*batch)  # load LPIPS once, as a run does
    benchmark.pedantic(protocol.evaluate, setup=_fresh_batches(), rounds=3, iterations=1)
    _report(benchmark, "istd protocol (torch, batched)")


def test_skimage_per_image(benchmark, weights_dir, batch):
    lpips = Lpips(weights_dir)
    pred, target, mask = (t.permute(0, 2, 3, 1).numpy() for t in batch)

    def per_image():
        for i in range(N):
            p, t = pred[i] / 255.0, target[i] / 255.0
            shadow = mask[i] != 0
            for region in (None, shadow, ~shadow):
                a, b = (p, t) if region is None else (p * region, t * region)
                peak_signal_noise_ratio(b, a, data_range=1.0)
                structural_similarity(
                    a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                    data_range=1.0, channel_axis=-1,
                )  # fmt: skip
            distance = np.abs(rgb2lab(p) - rgb2lab(t)).sum(axis=-1)
            for region in (np.ones_like(shadow[..., 0]), shadow[..., 0], ~shadow[..., 0]):
                distance[region].sum() / region.sum()
            lpips(batch[0][i : i + 1], batch[1][i : i + 1])

    benchmark.pedantic(per_image, rounds=3, iterations=1)
    _report(benchmark, "scikit-image per image (+ same LPIPS)")
