"""Scoring memory is bounded: the run path's peak does not grow with the test split beyond
the uint8 images it keeps (13 MB per ISTD image got runs killed for memory on real splits)."""

import subprocess
import sys

import pytest

from bench.data import get_dataset
from bench.data.synth import generate

SCRIPT = """
import resource, sys, torch
from pathlib import Path
from bench.data import get_dataset, open_split
from bench.runner.execute import sample_split, score
from bench.runner.cells import Cell
from bench.runner.grid import Identity

root, count = Path(sys.argv[1]), int(sys.argv[2])
cell = Cell(dataset="synth-shadow", method="identity", seed=0, profile="smoke",
            task="shadow-removal", protocol="istd", image_size=48, batch_size=1,
            grad_accumulation=1, iterations=1, steps=1, lr=1e-3, unet_dim=8, unet_mults=(1,),
            ema_decay=0.9, ema_every=1, ema_start=0, checkpoint_every=1, eval_images=count,
            eval_batch_size=16)
split = open_split("synth-shadow", root, "test", image_size=48, train=False)
samples = sample_split(Identity(), split, cell, torch.device("cpu"))
scores = score(cell, samples, root / "no-weights", torch.device("cpu"), get_dataset("synth-shadow"))
assert len(scores.per_image) == count
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_test_split(tmp_path):
    spec = get_dataset("synth-shadow")
    root = generate(
        spec, tmp_path / "synth-shadow", overrides={"train_count": 1, "test_count": 192}
    )

    def peak_mib(count: int) -> int:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(root), str(count)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return int(done.stdout.split()[-1])

    small, large = peak_mib(24), peak_mib(192)
    # 168 more 96x128 test triplets are ~20 MB as uint8 samples and decoded images; the
    # fragmented heap grew by ~10 MB per image scored (1.7 GB here) before the fix
    assert large - small < 150, (small, large)
