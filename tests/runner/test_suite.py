"""The hardware suite's code path on CPU, small (the GPU figures come from `nox -s gpu`)."""

import pytest
import torch

from bench import suite


def test_sampling_rows_time_every_setting_and_derive_rates(monkeypatch):
    monkeypatch.setattr(suite, "SUITE_METHODS", ("resfusion",))
    monkeypatch.setattr(suite, "SETTINGS", (("fp32", False), ("bf16", False)))
    rows = suite.sampling_rows(32, (1, 2), torch.device("cpu"), repeats=1, warmup=0)
    assert [(r["precision"], r["batch"]) for r in rows] == [
        ("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)
    ]  # fmt: skip
    for row in rows:
        assert row["s_per_step"] > 0 and row["steps"] == 5
        assert row["s_per_image"] == pytest.approx(row["s_per_step"] * 5 / row["batch"])
        assert row["tflops"] > 0 and row["peak_share"] is None  # no known peak on a CPU


def test_training_rate_counts_iterations():
    result = suite.training_rate(16, 2, torch.device("cpu"))
    assert result["iterations"] == 2 and result["iterations_per_s"] > 0


def test_peak_is_known_for_the_papers_and_our_gpus():
    assert suite.peak_tflops(torch.device("cpu")) is None
    assert {"H200", "RTX 3090"} <= set(suite.BF16_PEAK_TFLOPS)
