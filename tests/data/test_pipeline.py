"""Each method's data pipeline, as its official code prepares the images (docs/datasets.md,
"Data pipelines"): RDDM's template (nachifur/RDDM datasets/base.py and the inpainting
dataset of experiment 4) and Resfusion's datamodules (nkicsl/Resfusion datamodule/*.py)."""

import numpy as np
import pytest
import torch
from data_fixtures import random_rgb, write_png
from PIL import Image
from test_loaders import to_unit, unpaired_spec

from bench.data import get_dataset, open_split
from bench.data.loaders import open_split as open_spec_split
from bench.data.pipeline import Pipeline, choose_pipeline
from bench.errors import UsageError


def pipeline(choice, method, dataset):
    spec = get_dataset(dataset)
    return choose_pipeline(choice, method, spec.task, dict(spec.preprocess))


def test_each_method_gets_its_own_papers_pipeline():
    # RDDM: Augmentor flip_left_right(1) mirrors every training pair; resize to 256 for
    # training and testing; equalizeHist on LOL only (experiment 3)
    rddm = pipeline("paper", "rddm", "istd")
    assert (rddm.source, rddm.train_flip, rddm.train_crop, rddm.test_size) == (
        "rddm", "always", "resize", "resize")  # fmt: skip
    assert not rddm.equalize_input and pipeline("paper", "rddm", "lol").equalize_input
    # Resfusion: RandomCrop(256) + HorizontalFlip(p=0.5); the test transform only normalises
    for dataset in ("istd", "lol", "raindrop"):
        resfusion = pipeline("paper", "resfusion", dataset)
        assert (resfusion.train_crop, resfusion.train_flip, resfusion.test_size) == (
            "random", "random", "native")  # fmt: skip
        assert not resfusion.equalize_input  # "we do not use ... Histogram Equalization"
    # a method whose paper states none: the dataset's
    assert pipeline("paper", "sr3", "istd") == Pipeline(source="dataset", train_flip="random")
    # RDDM's CelebA-HQ inpainting: torchvision Resize (PIL bilinear), no flip
    inpainting = pipeline("paper", "rddm", "celebahq")
    assert (inpainting.resize_filter, inpainting.train_flip) == ("bilinear", "none")


def test_one_pipeline_for_every_method_is_a_choice():
    assert pipeline("rddm", "resfusion", "istd") == pipeline("paper", "rddm", "istd")
    assert pipeline("dataset", "rddm", "istd").source == "dataset"
    assert pipeline("dataset", "rddm", "istd").train_flip == "random"
    with pytest.raises(UsageError, match="--pipeline 'nope'.*valid: paper, dataset"):
        pipeline("nope", "rddm", "istd")


def test_random_crops_are_not_resized_and_native_tests_keep_the_files_size(small_shadow):
    size, options = pipeline("paper", "resfusion", "synth-shadow").train_options(32)
    torch.manual_seed(0)
    item = open_split("synth-shadow", small_shadow, "train", size, train=True, **options)[0]
    target = np.asarray(Image.open(small_shadow / "train" / "train_C" / f"{item['name']}.png"))
    crop = to_unit(item["target"])
    assert crop.shape == (32, 32, 3)
    # the crop is a window of the file (possibly mirrored), never a resized copy
    windows = [
        target[top : top + 32, left : left + 32]
        for top in range(target.shape[0] - 31)
        for left in range(target.shape[1] - 31)
    ]
    assert any(np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows)
    size, options = pipeline("paper", "resfusion", "synth-shadow").test_options(32)
    test = open_split("synth-shadow", small_shadow, "test", size, train=False, **options)[0]
    truth = np.asarray(Image.open(small_shadow / "test" / "test_C" / f"{test['name']}.png"))
    assert np.array_equal(to_unit(test["target"]), truth)  # 128x96 as the file, not 32x32


def test_rddm_mirrors_every_training_pair(small_shadow):
    size, options = pipeline("paper", "rddm", "synth-shadow").train_options(48)
    split = open_split("synth-shadow", small_shadow, "train", size, train=True, **options)
    for index in range(len(split)):
        item = split[index]
        file = Image.open(small_shadow / "train" / "train_C" / f"{item['name']}.png")
        mirrored = np.asarray(file.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        assert np.array_equal(to_unit(item["target"]), mirrored)  # 48 px crops: no resize


def test_inpainting_bilinear_resize_equals_torchvision(tmp_path):
    """RDDM's inpainting dataset: transforms.Resize((64, 64)) on a PIL image."""
    from torchvision import transforms

    image = random_rgb(90, 70, seed=5)
    write_png(tmp_path / "val" / "1.png", image)
    size, options = pipeline("paper", "rddm", "celebahq").test_options(64)
    item = open_spec_split(
        unpaired_spec("celebahq", ["val"]), tmp_path, "val", size, train=False, **options
    )[0]
    expected = np.asarray(transforms.Resize((64, 64))(Image.fromarray(image)))
    assert np.array_equal(to_unit(item["target"]), expected)
