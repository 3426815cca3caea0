"""LPIPS through our weights folder, on a generated AlexNet file (relations, not values)."""

import pytest
import torch
from conftest import degrade

from bench import weights as weight_files
from bench.metrics.perceptual import Lpips
from bench.protocols import get_protocol


def test_trunk_is_loaded_from_our_file(alexnet_weights_dir):
    metric = Lpips(alexnet_weights_dir)
    state = torch.load(weight_files.weight_path("alexnet", alexnet_weights_dir), weights_only=True)
    assert torch.equal(metric.model.net.slice1[0].weight, state["features.0.weight"])
    assert torch.equal(metric.model.net.slice5.get_submodule("10").bias, state["features.10.bias"])
    assert metric.verification.state == "mismatch"  # a generated file is not the official one


def test_lpips_relations(alexnet_weights_dir, photos):
    metric = Lpips(alexnet_weights_dir)
    mild, strong = degrade(photos, "noise"), degrade(degrade(photos, "noise"), "noise", seed=3)
    assert torch.allclose(metric(photos, photos), torch.zeros(3, dtype=torch.float64), atol=1e-7)
    assert torch.allclose(metric(mild, photos), metric(photos, mild), atol=1e-6)
    assert (metric(strong, photos) > metric(mild, photos)).all()


def test_protocol_reports_lpips_and_flags_unofficial_weights(alexnet_weights_dir, photos):
    result = get_protocol("rgb", alexnet_weights_dir).evaluate(degrade(photos, "blur"), photos)
    assert result.summary["lpips"] > 0 and "lpips" not in result.unavailable
    assert result.meta["weights_verification"] == "mismatch"
    assert any("not the official AlexNet" in w for w in result.warnings)


def test_a_file_that_is_not_alexnet_is_refused(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, weight_files.weight_path("alexnet", tmp_path))
    with pytest.raises(Exception, match="not an AlexNet state dict"):
        Lpips(tmp_path)
