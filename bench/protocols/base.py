"""What every evaluation protocol provides, and the registry that names them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import torch

from bench.conventions import Convention
from bench.errors import UsageError
from bench.metrics.result import MetricResult
from bench.registry import Registry

if TYPE_CHECKING:
    from bench.statistics import Aggregate

#: images per ``measure`` call on CPU (see Protocol._measure_in_chunks)
CPU_MEASURE_IMAGES = 1


class Protocol:
    """A named evaluation procedure that fixes every convention of one paper's tables.

    Subclasses set ``name``, ``description`` and ``table`` and implement :meth:`measure`.
    ``evaluate`` takes what would be saved as PNG: uint8 (N, 3, H, W) predictions and
    targets, and optionally uint8 (N, 1, H, W) masks (0/255).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    table: ClassVar[str]
    #: whether a mask folder is meaningful for this protocol (ISTD)
    uses_mask: ClassVar[bool] = False
    #: file-stem suffixes dropped before pairing predictions with ground truth
    pair_suffixes: ClassVar[tuple[str, ...]] = ()
    #: set metrics (FID...) are computed over the whole set, never per batch
    set_metrics: ClassVar[bool] = False
    #: whether ``measure`` brings predictions and ground truth of different sizes to one size
    #: itself, as its script does; a protocol that does not gets the prediction at the ground
    #: truth's size from the runner, and ``evaluate`` refuses two sizes
    resizes: ClassVar[bool] = False
    #: per-image columns whose mean over images is a summary value
    mean_columns: ClassVar[tuple[str, ...]] = ()
    #: the convention a variant protocol applies to its base (None: a paper's own protocol)
    convention: ClassVar[Convention | None] = None

    def __init__(self, weights_dir: Path, device: str = "cpu") -> None:
        self.weights_dir = Path(weights_dir)
        self.device = device

    # -- the interface used by the runner and `bench score` -------------------------------

    def evaluate(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        names: list[str] | None = None,
    ) -> MetricResult:
        self._check_inputs(pred, target, mask, names)
        names = list(names) if names is not None else [f"{i:05d}" for i in range(len(pred))]
        columns, unavailable = self._measure_in_chunks(pred, target, mask)
        per_image = pd.DataFrame({"name": names, **columns})
        meta = {
            "protocol": self.name,
            "table": self.table,
            "n_images": len(names),
            **self.conventions(),
        }
        if self.convention is not None:
            meta["variant"] = {"of": self.convention.base, "change": self.convention.label,
                               "used_by": self.convention.used_by}  # fmt: skip
        return MetricResult(per_image, self.summarize(per_image), unavailable, meta)

    def _measure_in_chunks(self, pred, target, mask):
        """``measure`` over a few images at a time on CPU: per-image metrics do not depend
        on their neighbours, and a chunk's float64 intermediates stay in cache (ISTD on
        12 images at 256x256: 1.0 s one by one, 3.4 s in one pass).

        Each chunk's values leave torch at once, as Python floats: kept as small tensors,
        they pinned the top of the C heap between the chunks' large temporaries, so the
        process grew by about 10 MB per image scored (5.9 GB for 512 ISTD-size images)."""
        size = len(pred) if self.set_metrics or self.device != "cpu" else CPU_MEASURE_IMAGES
        columns: dict[str, list[float]] = {}
        unavailable: dict[str, str] = {}
        for start in range(0, max(len(pred), 1), max(size, 1)):
            part = slice(start, start + size)
            found, missing = self.measure(
                pred[part].to(self.device),
                target[part].to(self.device),
                None if mask is None else mask[part],
            )
            for name, values in found.items():
                columns.setdefault(name, []).extend(values.detach().cpu().double().tolist())
            unavailable.update(missing)
        return {name: np.asarray(values) for name, values in columns.items()}, unavailable

    def combine(self, results: list[MetricResult]) -> MetricResult:
        """Merge per-batch results into one, recomputing the aggregates from all images."""
        if self.set_metrics:
            raise ValueError(f"protocol '{self.name}' scores a whole set; call evaluate once")
        if not results:
            raise ValueError("no results to combine")
        per_image = pd.concat([r.per_image for r in results], ignore_index=True)
        unavailable = {k: v for r in results for k, v in r.unavailable.items()}
        meta = dict(results[0].meta, n_images=len(per_image))
        # a metric some batch could not compute is unavailable for the set, never a mean of
        # the others
        summary = {k: v for k, v in self.summarize(per_image).items() if k not in unavailable}
        return MetricResult(per_image, summary, unavailable, meta)

    def pair_key(self, stem: str) -> str:
        """The key that pairs a prediction file with its ground truth (and mask)."""
        for suffix in self.pair_suffixes:
            if stem.endswith(suffix):
                return stem[: -len(suffix)]
        return stem

    # -- what subclasses provide -----------------------------------------------------------

    def measure(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Per-image columns (name -> (N,) tensor) and unavailable metrics with reasons."""
        raise NotImplementedError

    def summarize(self, per_image: pd.DataFrame) -> dict[str, float]:
        return {
            column: float(np.mean(per_image[column].to_numpy(dtype=np.float64)))
            for column in self.mean_columns
            if column in per_image
        }

    def aggregate(self, key: str) -> Aggregate | None:
        """How the summary value ``key`` comes from the per-image table, for resampling over
        images (bench.statistics); None for a value that is not an aggregate of per-image
        values (a set metric)."""
        from bench.statistics import Aggregate

        return Aggregate(key) if key in self.mean_columns else None

    def conventions(self) -> dict[str, Any]:
        return {}

    # -- shared checks ---------------------------------------------------------------------

    @property
    def scores_loader_size(self) -> bool:
        """Which of a run's folders this protocol's script scores: the predictions at the
        loader's size (``samples/``, which a resizing script brings to its own size) or at
        the files' (``samples_native/``)."""
        return self.resizes

    @property
    def accepts_grey(self) -> bool:
        """Whether one-channel images are scored (on their grey values, as a Y-channel
        script's ``if size(im,3)==3`` guard does); otherwise only RGB, never replicated."""
        return False

    def _check_inputs(self, pred, target, mask, names) -> None:
        channels = (1, 3) if self.accepts_grey else (3,)
        shape = "(N, 1 or 3, H, W)" if self.accepts_grey else "(N, 3, H, W)"
        for label, images in (("pred", pred), ("target", target)):
            if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in channels:
                raise UsageError(
                    f"protocol '{self.name}': {label} must be uint8 {shape}, "
                    f"got {images.dtype} {tuple(images.shape)}"
                )
        if not self.set_metrics and pred.shape[0] != target.shape[0]:
            raise UsageError(
                f"protocol '{self.name}': {pred.shape[0]} predictions but {target.shape[0]} targets"
            )
        if mask is not None:
            self._check_mask(mask, target.shape[0])
        if names is not None and len(names) != pred.shape[0]:
            raise UsageError(f"{len(names)} names for {pred.shape[0]} images")
        if not (self.resizes or self.set_metrics) and pred.shape[-2:] != target.shape[-2:]:
            raise UsageError(
                f"protocol '{self.name}' does not resize: prediction {tuple(pred.shape[-2:])} "
                f"and ground truth {tuple(target.shape[-2:])} differ; use a resizing protocol"
            )

    def _check_mask(self, mask, count: int) -> None:
        if mask.dtype != torch.uint8 or (mask.ndim, tuple(mask.shape[:2])) != (4, (count, 1)):
            raise UsageError(
                f"protocol '{self.name}': mask must be uint8 (N, 1, H, W) with N = "
                f"{count}, got {mask.dtype} {tuple(mask.shape)}"
            )


PROTOCOLS: Registry[type[Protocol]] = Registry("protocol")


def register_variant(base: type[Protocol], variant: Convention) -> type[Protocol]:
    """The protocol ``<base>-<suffix>``: the base with the convention's options as defaults,
    under its own name, so its results say which convention scored them."""
    options = dict(variant.options)

    def __init__(self, weights_dir, device="cpu", **overrides):
        base.__init__(self, weights_dir, device, **(options | overrides))

    cls = type(
        variant.name.title().replace("-", ""),
        (base,),
        {
            "__init__": __init__,
            "__doc__": f"{base.__doc__}\n    Variant: {variant.label} ({variant.used_by}).",
            "name": variant.name,
            "description": f"{base.description}; variant: {variant.label}",
            "table": f"{base.table} (numbers under another convention: {variant.used_by})",
            "convention": variant,
        },
    )
    return PROTOCOLS.add(variant.name, cls)


def get_protocol(name: str, weights_dir: Path, device: str = "cpu", **options: Any) -> Protocol:
    """An instance of the named protocol; unknown names raise UsageError listing the valid ones."""
    return PROTOCOLS.get(name)(weights_dir, device, **options)
