"""FID / IS / KID end to end, offline, on a generated Inception file."""

import pytest
import torch

from bench.metrics.fidelity import generation_metrics
from bench.protocols import get_protocol

N = 6  # torch-fidelity costs ~0.2 s per image on CPU


def _faces(seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(40, 200, 32).view(1, 1, 1, 32).expand(N, 3, 32, 32)
    noise = 25 * torch.randn((N, 3, 32, 32), generator=g)
    return (base + noise + shift).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.slow  # two FIDs: torch-fidelity eigvals a 2048x2048 matrix (~8 s each on 2 cores)
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift(inception_weights_dir):
    images = _faces(0)
    same = generation_metrics(images, images, inception_weights_dir)
    assert abs(same.summary["fid"]) < 1e-3
    assert same.meta["n_generated"] == N and same.meta["n_reference"] == N
    assert same.meta["kid_subset_size"] == N and same.meta["reference_sha256"]
    assert any("biased" in w for w in same.warnings)  # N < 2048
    shifted = get_protocol("celeba", inception_weights_dir).evaluate(images, _faces(1, 60.0))
    assert shifted.summary["fid"] > 1.0
    assert shifted.summary["kid"] > same.summary["kid"]
    assert shifted.summary["isc"] >= 1.0 - 1e-9  # IS >= 1 in exact arithmetic
    assert shifted.meta["protocol"] == "celeba" and shifted.meta["n_reference"] == N


def test_missing_inception_weights_are_unavailable(tmp_path):
    result = generation_metrics(_faces(0), _faces(1), tmp_path)
    assert result.summary == {}
    assert "bench weights fetch" in result.unavailable["fid"]
    assert set(result.unavailable) == {"fid", "isc", "isc_std", "kid", "kid_std"}
