"""The 256x256 variants of the Y-channel protocols (lol-256, raindrop-256): Resfusion's
256x256 columns score its native-size outputs after resizing both images, as RDDM's script
scores its own 256x256 outputs against the resized ground truth."""

import torch

from bench.metrics.resize import imresize
from bench.protocols import get_protocol


def images(height, width, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (2, 3, height, width), generator=generator, dtype=torch.uint8)


def test_a_256_prediction_scores_as_the_paper_protocol(tmp_path):
    pred, target = images(256, 256, 0), images(400, 600, 1)
    for base in ("lol", "raindrop"):
        square = get_protocol(f"{base}-256", tmp_path).evaluate(pred, target)
        paper = get_protocol(base, tmp_path).evaluate(pred, target)
        assert square.summary == paper.summary


def test_a_native_prediction_is_resized_with_its_ground_truth(tmp_path):
    pred, target = images(400, 600, 2), images(400, 600, 3)
    square = get_protocol("lol-256", tmp_path).evaluate(pred, target)
    # the paper protocol on both images brought to 256x256 first
    resized = get_protocol("lol", tmp_path).evaluate(
        imresize(pred, (256, 256)), imresize(target, (256, 256))
    )
    assert square.summary == resized.summary
    native = get_protocol("lol", tmp_path).evaluate(pred, target)  # at 600x400
    assert square.summary["psnr"] != native.summary["psnr"]
    assert "256x256" in square.meta["resize"]
