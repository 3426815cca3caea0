"""Which images a method trains and is tested on: its paper's data pipeline for a dataset.

The papers prepare the same dataset differently, and the preparation moves the numbers:

- RDDM's template pads each image, resizes it to 256x256 (bicubic) for training and testing,
  and mirrors every training pair: Augmentor's ``flip_left_right(1)`` applies with
  probability 1 (``datasets/base.py``, ``augment_flip`` on by default in its Trainer). On LOL
  it equalises the input's histogram (``equalizeHist=True`` in experiment 3).
- Resfusion trains on random 256x256 crops with a horizontal flip of probability 0.5
  (albumentations ``RandomCrop`` and ``HorizontalFlip(p=0.5)`` in ``datamodule/ISTD.py``,
  ``LOL.py``, ``Raindrop.py``), tests at the files' own size (its test transform only
  normalises), and equalises nothing.

A method's pipeline is its paper's for the dataset's task (the ``data`` entry of its paper
settings), over the dataset manifest's ``[preprocess]`` defaults. ``--pipeline`` chooses
another for every method of a grid (a fair comparison on one pipeline); the choice and the
resolved settings are recorded on every run (docs/datasets.md, "Data pipelines").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from bench.errors import UsageError

#: ``--pipeline`` values besides a method name
PAPER, DATASET = "paper", "dataset"


@dataclass(frozen=True)
class Pipeline:
    """``train_crop``: "resize" (the padded image resized to the cell's image size) or
    "random" (a random crop of that size, no resize); ``train_flip``: "none", "random"
    (p = 0.5) or "always"; ``equalize_input``: per-channel histogram equalisation of the
    input; ``test_size``: "resize" or "native" (the files' own size, padded to a multiple
    of 8); ``resize_filter``: PIL's "bicubic" or "bilinear"; ``source``: whose pipeline it
    is ("rddm", "dataset", ...)."""

    source: str = DATASET
    train_crop: Literal["resize", "random"] = "resize"
    train_flip: Literal["none", "random", "always"] = "random"
    equalize_input: bool = False
    test_size: Literal["resize", "native"] = "resize"
    resize_filter: Literal["bicubic", "bilinear"] = "bicubic"

    def train_options(self, image_size: int) -> tuple[int | None, dict[str, Any]]:
        """``(image_size, Preprocess options)`` for the training split."""
        options: dict[str, Any] = {
            "flip": self.train_flip,
            "equalize_input": self.equalize_input,
            "resize_filter": self.resize_filter,
        }
        if self.train_crop == "random":
            options["random_crop"] = image_size
        return image_size, options

    def test_options(self, image_size: int) -> tuple[int | None, dict[str, Any]]:
        """``(image_size, Preprocess options)`` for the test split: None keeps the files'
        size."""
        size = None if self.test_size == "native" else image_size
        return size, {"equalize_input": self.equalize_input, "resize_filter": self.resize_filter}

    def params(self) -> dict[str, Any]:
        """What a run records: ``pipeline.<field>``."""
        return {f"pipeline.{key}": value for key, value in asdict(self).items()}


#: what a method's paper settings may declare under ``data``
_DECLARABLE = {f.name for f in fields(Pipeline)} - {"source"}
_VALUES = {
    "train_crop": ("resize", "random"),
    "train_flip": ("none", "random", "always"),
    "test_size": ("resize", "native"),
    "resize_filter": ("bicubic", "bilinear"),
}


def dataset_pipeline(preprocess: dict[str, Any]) -> Pipeline:
    """The manifest's ``[preprocess]`` defaults as a pipeline."""
    return Pipeline(
        source=DATASET,
        train_crop=preprocess.get("train_crop", "resize"),
        train_flip=preprocess.get("train_flip", "random"),
        equalize_input=bool(preprocess.get("equalize_input", False)),
        test_size=preprocess.get("test_size", "resize"),
    )


def cell_pipeline(settings: dict[str, Any], preprocess: dict[str, Any]) -> Pipeline:
    """A cell's recorded pipeline; a cell that records none gets the dataset's."""
    return Pipeline(**settings) if settings else dataset_pipeline(preprocess)


def method_pipeline(method: str, task: str, preprocess: dict[str, Any]) -> Pipeline:
    """``method``'s paper pipeline for ``task``: its declared ``data`` settings over the
    dataset's defaults (a method that declares none uses the dataset's)."""
    from baselines import paper_settings

    try:
        declared = paper_settings(method, task).get("data", {})
    except (KeyError, ValueError):  # no paper settings for this task: the dataset's
        declared = {}
    return _with(dataset_pipeline(preprocess), declared, method if declared else DATASET)


def choose_pipeline(choice: str, method: str, task: str, preprocess: dict[str, Any]) -> Pipeline:
    """The pipeline ``--pipeline choice`` gives ``method``: "paper" (each method its own
    paper's, the default), "dataset" (the manifest's for every method), or a method's name
    (that method's paper pipeline for every method)."""
    from baselines import METHODS

    if choice == PAPER:
        return method_pipeline(method, task, preprocess)
    if choice == DATASET:
        return dataset_pipeline(preprocess)
    if choice in METHODS:
        return method_pipeline(choice, task, preprocess)
    raise UsageError(
        f"--pipeline {choice!r} is neither 'paper', 'dataset' nor a method; valid: paper, "
        f"dataset, {', '.join(sorted(METHODS))}"
    )


def _with(base: Pipeline, declared: dict[str, Any], source: str) -> Pipeline:
    unknown = set(declared) - _DECLARABLE
    if unknown:
        raise ValueError(f"unknown data pipeline setting(s) {sorted(unknown)}")
    for key, allowed in _VALUES.items():
        if key in declared and declared[key] not in allowed:
            raise ValueError(
                f"data pipeline {key} = {declared[key]!r}; valid: {', '.join(allowed)}"
            )
    return replace(base, source=source, **declared)
