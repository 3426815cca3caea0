"""`bench profile`: paper-compatible (thop) and audited counts, per image = per step x steps."""

import json

from typer.testing import CliRunner

from baselines import build_method
from bench.cli import app


def test_profile_json_counts_both_ways():
    result = CliRunner().invoke(
        app,
        ["profile", "rddm", "--size", "32", "--dim", "8", "--dataset", "synth-shadow", "--json"],
    )
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    reference = build_method("rddm", mask_channels=1, unet_dim=8, sum_scale=0.01)
    expected = {
        name: sum(p.numel() for p in net.parameters()) for name, net in reference.networks().items()
    }
    assert {name: net["params"] for name, net in profile["networks"].items()} == expected
    total = profile["total"]
    # thop skips the weight-standardised convolutions and norms: it must count less
    assert 0 < total["params_thop"] < total["params"]
    assert 0 < total["macs_thop"] < total["macs"]
    assert profile["steps"] == 5  # RDDM's paper steps for shadow removal
    assert total["macs_per_image"] == total["macs"] * 5
    for network in profile["networks"].values():
        assert network["latency_s"]["repeats"] >= 15
        assert network["latency_s"]["median"] > 0


def test_profile_unknown_method_is_usage_error():
    result = CliRunner().invoke(app, ["profile", "rdm"])
    assert result.exit_code == 2
    assert "unknown method 'rdm'" in result.output
