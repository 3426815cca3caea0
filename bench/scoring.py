"""Scoring outputs against ground truth under a protocol: the one path every score takes.

``score_samples(protocol, samples)`` scores what a run sampled (`bench run`, its audit and its
learning curve); ``score_folders(pred_dir, gt_dir, protocol, mask_dir)`` scores a folder of
result images (`bench score`, which mirrors it). Both evaluate same-size groups and merge
them (:func:`evaluate_groups`), and both follow one rule for a prediction whose size differs
from its ground truth file (:func:`size_problem`). Pairing uses the protocol's naming rule (file stems, minus suffixes such
as RainDrop's ``_clean``); every problem with the inputs is found before any metric runs.
Hidden files are ignored, as everywhere in bench.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bench import console
from bench.audit import AuditRow, audit_rows
from bench.data.spec import IMAGE_SUFFIXES
from bench.data.verify import hidden
from bench.errors import BenchError, UsageError
from bench.files import GREY_MODES, read_image
from bench.metrics.result import MetricResult
from bench.protocols import Protocol
from bench.protocols.audit_scoring import audit_protocols


@dataclass
class NativeFiles:
    """The ground truth (and masks) of sampled images as their files hold them, and the size
    the loader padded each to before resizing (docs/protocols.md §5)."""

    targets: list[torch.Tensor] = field(default_factory=list)  # uint8 (3, H, W) each
    masks: list[torch.Tensor] = field(default_factory=list)  # uint8 (1, H, W) each, or none
    padded: list[tuple[int, int]] = field(default_factory=list)
    #: the inputs of the first images, for the sample grid (never scored)
    inputs: list[torch.Tensor] = field(default_factory=list)


@dataclass
class Samples:
    """What sampling a test split gives: uint8 predictions and, batched like them, the
    loader's inputs, targets and masks (N, C, h, w), the image names, how many images the
    split has, and the files at their own size (None for unpaired data)."""

    pred: torch.Tensor
    target: torch.Tensor
    input: torch.Tensor | None
    mask: torch.Tensor | None
    names: list[str]
    split_size: int
    native: NativeFiles | None = None

    def subset_tags(self) -> dict[str, str]:
        """How much of the test split was scored: "64/540" and whether it is a subset."""
        scored = len(self.names)
        return {
            "eval_images": f"{scored}/{self.split_size}",
            "eval_subset": "yes" if scored < self.split_size else "no",
        }


def native_groups(native: NativeFiles) -> dict[tuple, list[int]]:
    """Image indices grouped by (file size, padded size, channels): one resize per group,
    greyscale ground truth apart from colour."""
    groups: dict[tuple, list[int]] = {}
    for index, (target, padded) in enumerate(zip(native.targets, native.padded, strict=True)):
        groups.setdefault((tuple(target.shape[-2:]), padded, target.shape[0]), []).append(index)
    return groups


def in_channels(pred: torch.Tensor, channels: int) -> torch.Tensor:
    """Predictions with their ground truth's channels: for a greyscale file (a super-resolution
    set's; the methods saw it in three equal channels) the rounded mean of the output's
    channels, scored on its grey values; colour predictions of colour files as they are."""
    if channels == pred.shape[1]:
        return pred
    return pred.to(torch.float64).mean(dim=1, keepdim=True).round().to(torch.uint8)


def to_native_size(pred: torch.Tensor, size: tuple, padded: tuple) -> torch.Tensor:
    """Predictions brought back to their file's size: resized (MATLAB bicubic) to the size
    the loader padded the file to, then cropped to the file (docs/protocols.md, "Native
    size")."""
    from bench.metrics.resize import imresize

    return imresize(pred, padded)[..., : size[0], : size[1]].contiguous()


def native_predictions(samples: Samples) -> dict[str, torch.Tensor]:
    """Every prediction at its ground truth file's size, by name: what the protocols that do
    not resize scored, and what `bench score` needs to reproduce the run's audit."""
    out = {}
    for (size, padded, channels), indices in native_groups(samples.native).items():
        pred = in_channels(samples.pred[indices], channels)
        if pred.shape[-2:] != size:
            pred = to_native_size(pred, size, padded)
        out.update({samples.names[i]: image for i, image in zip(indices, pred, strict=True)})
    return out


def score_samples(protocol: Protocol, samples: Samples) -> MetricResult:
    """Score a run's predictions against the ground truth files at their own size, as the
    papers' scripts read them, never against the loader's resized copies: each protocol
    then resizes as its script does (ISTD: both to 256x256; Y-channel and GoPro scripts:
    the ground truth to the prediction's size). A protocol that does not resize gets the
    prediction brought back to the file's size (:func:`fitted`). Images of different sizes
    are scored in groups of one size and merged. Unpaired data (generation) has no files to
    go back to: its protocol scores the loader's images as one set."""
    native = samples.native
    if native is None:
        return protocol.evaluate(samples.pred, samples.target, samples.mask, samples.names)

    def groups() -> Iterable[tuple]:
        for (size, padded, channels), indices in native_groups(native).items():
            pred = fitted(protocol, in_channels(samples.pred[indices], channels), size, padded)
            target = torch.stack([native.targets[i] for i in indices])
            mask = torch.stack([native.masks[i] for i in indices]) if native.masks else None
            yield pred, target, mask, [samples.names[i] for i in indices]

    return evaluate_groups([protocol], groups(), samples.names)[0]


def size_problem(
    protocol: Protocol, pred: tuple[int, int], truth: tuple[int, int], padded: tuple | None
) -> str | None:
    """The one rule for a prediction of another size than its ground truth file: fine when
    the protocol resizes (as its script does), or when the padded size the loader made is
    known (the prediction is brought back: resized to it, then cropped); otherwise why it
    cannot be scored. Sizes are (height, width)."""
    if protocol.resizes or pred == truth or padded is not None:
        return None
    return (
        f"is {pred[1]}x{pred[0]} but its ground truth is {truth[1]}x{truth[0]}; protocol "
        f"'{protocol.name}' does not resize"
    )


def fitted(protocol: Protocol, pred: torch.Tensor, size: tuple, padded: tuple | None) -> torch.Tensor:  # fmt: skip
    """Predictions as ``protocol`` scores them against files of ``size`` (:func:`size_problem`)."""
    shape, size = tuple(pred.shape[-2:]), tuple(size)
    problem = size_problem(protocol, shape, size, padded)
    if problem is not None:
        raise UsageError(f"a prediction {problem}")
    if padded is not None and shape == tuple(padded) != size:
        return pred[..., : size[0], : size[1]]  # at the padded size: the padding cut away
    if protocol.resizes or shape == size:
        return pred
    return to_native_size(pred, size, padded)


def evaluate_groups(
    protocols: Sequence[Protocol], groups: Iterable[tuple], order: Sequence[str]
) -> list[MetricResult]:
    """Each protocol's result over same-size groups of (pred, target, mask, names), each
    group read once for all of them; per-image rows in ``order`` (the images' names)."""
    parts: list[list[MetricResult]] = [[] for _ in protocols]
    for pred, target, mask, names in groups:
        for protocol, results in zip(protocols, parts, strict=True):
            results.append(protocol.evaluate(pred, target, mask, names))
    position = {name: i for i, name in enumerate(order)}
    merged = []
    for protocol, results in zip(protocols, parts, strict=True):
        result = protocol.combine(results)
        result.per_image = result.per_image.sort_values("name", key=lambda s: s.map(position))
        merged.append(result)
    return merged


def list_images(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{what} folder {folder} does not exist")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not hidden(p)
    )
    if not files:
        raise UsageError(
            f"{what} folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def match_pattern(text: str | None) -> re.Pattern | None:
    """``--match``: a regular expression over prediction file stems whose group ``id`` (or
    first group) is the name to pair by, e.g. ``(?P<id>.+)_free`` for ``95-1_free.png``."""
    if text is None:
        return None
    try:
        pattern = re.compile(text)
    except re.error as error:
        raise UsageError(f"--match {text!r} is not a regular expression ({error})") from None
    if pattern.groups == 0:
        raise UsageError(f"--match {text!r} has no group: mark the name to pair by, e.g. (?P<id>.+)_free")  # fmt: skip
    return pattern


def _key(stem: str, protocol: Protocol, match: re.Pattern | None) -> str | None:
    if match is None:
        return protocol.pair_key(stem)
    found = match.fullmatch(stem)
    if found is None:
        return None
    return found["id"] if "id" in match.groupindex else found[1]


def index_by_key(
    files: list[Path], protocol: Protocol, what: str, match: re.Pattern | None = None
) -> dict[str, Path]:
    """Files by the name they pair under; with ``match``, a file it does not match is an
    error listing every such file (never dropped, never paired by order)."""
    index: dict[str, Path] = {}
    unmatched = [path.name for path in files if _key(path.stem, protocol, match) is None]
    if unmatched:
        raise UsageError(
            f"{what}: {len(unmatched)} file(s) do not match --match {match.pattern!r}: "
            f"{_names(unmatched)}"
        )
    for path in files:
        key = _key(path.stem, protocol, match)
        if key in index:
            raise UsageError(
                f"{what}: {index[key].name} and {path.name} pair under the same name '{key}'"
            )
        index[key] = path
    return index


def _names(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def pair_files(
    protocol: Protocol,
    pred_dir: Path,
    gt_dir: Path,
    mask_dir: Path | None,
    match: re.Pattern | None = None,
) -> list[tuple[str, Path, Path, Path | None]]:
    """(key, prediction, ground truth, mask) for every prediction; any gap is an error.
    ``match`` names predictions (released outputs whose names carry suffixes)."""
    preds = index_by_key(list_images(pred_dir, "prediction"), protocol, str(pred_dir), match)
    gts = index_by_key(list_images(gt_dir, "ground-truth"), protocol, str(gt_dir))
    masks = (
        index_by_key(list_images(mask_dir, "mask"), protocol, str(mask_dir)) if mask_dir else None
    )
    for label, side in (("ground truth", gts), ("mask", masks)):
        if side is None:
            continue
        if missing := set(preds) - set(side):
            raise UsageError(
                f"{len(missing)} prediction(s) in {pred_dir} have no {label}: {_names(missing)}"
            )
        if extra := set(side) - set(preds):
            raise UsageError(
                f"{len(extra)} {label} file(s) have no prediction in {pred_dir}: {_names(extra)}; "
                "a protocol scores the whole split"
            )
    return [(k, preds[k], gts[k], masks[k] if masks else None) for k in sorted(preds)]


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header; a file that is not an image is a usage error."""
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (UnidentifiedImageError, OSError) as error:
        raise UsageError(f"{path}: unreadable image ({error})") from None


def check_sizes(protocol: Protocol, pairs) -> list[tuple]:
    """Headers only: refuse size mismatches the protocol cannot resolve, before scoring."""
    sized = []
    for key, pred, gt, mask in pairs:
        shapes = (image_size(pred), image_size(gt), image_size(mask) if mask else None)
        problem = size_problem(protocol, shapes[0], shapes[1], None)
        if problem is not None:  # a file's padding is unknown: it cannot be brought back
            raise UsageError(f"size mismatch: {pred} {problem} ({gt})")
        if mask and shapes[2] != shapes[1]:
            raise UsageError(
                f"size mismatch: mask {mask} is {shapes[2][1]}x{shapes[2][0]} but its ground "
                f"truth {gt} is {shapes[1][1]}x{shapes[1][0]}"
            )
        sized.append((key, pred, gt, mask, shapes))
    return sized


def _channels(path: Path) -> int:
    """1 for a greyscale file, 3 otherwise (from the header)."""
    with Image.open(path) as image:
        return 1 if image.mode in GREY_MODES else 3


def _load(path: Path, mode: str = "RGB") -> torch.Tensor:
    try:
        array = read_image(path, mode)
    except BenchError as error:
        raise UsageError(str(error)) from None
    array = array[..., None] if array.ndim == 2 else array
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)  # a writable copy


def score_pairs(protocol: Protocol, sized, batch: int) -> MetricResult:
    """Evaluate same-size groups in batches and merge them into one result."""
    return score_pairs_under([protocol], sized, batch)[0]


def score_pairs_under(protocols: list[Protocol], sized, batch: int) -> list[MetricResult]:
    """:func:`score_pairs` under several protocols, each image read once."""
    mode = "any" if all(p.accepts_grey for p in protocols) else "RGB"
    by_size: dict[tuple, list] = defaultdict(list)
    for item in sized:  # one batch holds one size and one channel count per side
        by_size[(item[4], _channels(item[1]), _channels(item[2]))].append(item)

    def groups(advance) -> Iterable[tuple]:
        for items in by_size.values():
            for start in range(0, len(items), batch):
                chunk = items[start : start + batch]
                pred = torch.stack([_load(p, mode) for _, p, _, _, _ in chunk])
                gt = torch.stack([_load(g, mode) for _, _, g, _, _ in chunk])
                mask = torch.stack([_load(m, "L") for *_, m, _ in chunk]) if chunk[0][3] else None
                yield pred, gt, mask, [k for k, *_ in chunk]
                advance(len(chunk))

    label = protocols[0].name if len(protocols) == 1 else f"{len(protocols)} conventions"
    with console.progress_bar(f"scoring ({label})", len(sized)) as advance:
        return evaluate_groups(protocols, groups(advance), [item[0] for item in sized])


def score_sets(protocol: Protocol, pred_dir: Path, gt_dir: Path) -> MetricResult:
    """Set metrics (FID...): every image of each folder, one evaluation."""
    stacks = []
    for folder, what in ((pred_dir, "generated"), (gt_dir, "reference")):
        files = list_images(folder, what)
        sizes = {image_size(f) for f in files}
        if len(sizes) > 1:
            raise UsageError(f"{what} folder {folder} mixes image sizes {sorted(sizes)[:3]}")
        stacks.append((torch.stack([_load(f) for f in files]), [f.stem for f in files]))
    (generated, names), (reference, _) = stacks
    return protocol.evaluate(generated, reference, names=names)


def score_folders(
    pred_dir: Path,
    gt_dir: Path,
    protocol: Protocol,
    mask_dir: Path | None = None,
    batch: int = 16,
    match: str | None = None,
) -> MetricResult:
    """Score every image of ``pred_dir`` against its partner in ``gt_dir`` (set metrics such
    as FID compare the two folders as sets); ``match`` as :func:`match_pattern`."""
    if mask_dir is not None and not protocol.uses_mask:
        raise UsageError(f"protocol '{protocol.name}' takes no masks; drop --mask-dir")
    pattern = match_pattern(match)
    if protocol.set_metrics:
        return score_sets(protocol, pred_dir, gt_dir)
    pairs = pair_files(protocol, pred_dir, gt_dir, mask_dir, pattern)
    return score_pairs(protocol, check_sizes(protocol, pairs), batch)


@dataclass(frozen=True)
class _NativePairs:
    names: list[str]  # the audited protocols that score at the files' size
    pairs: list[tuple]  # what they score


def _native_pairs(protocols, reference, sized, native_dir, gt_dir, mask_dir) -> _NativePairs:
    """What the protocols that do not resize score: a run's ``samples_native/`` when given,
    else the predictions themselves when they are at the files' size; otherwise those
    protocols are left out of the audit (and of ``protocols``), with a warning."""
    names = [name for name, protocol in protocols.items() if not protocol.resizes]
    if native_dir is not None:  # a run's folder: its predictions at the files' size
        return _NativePairs(names, check_sizes(reference, pair_files(reference, native_dir, gt_dir, mask_dir)))  # fmt: skip
    if all(shapes[0] == shapes[1] for *_, shapes in sized):
        return _NativePairs(names, sized)
    for name in names:
        console.warn(f"{name} left out of the audit: it scores at native size, and "
                     "predictions and ground truth differ in size")  # fmt: skip
        del protocols[name]
    return _NativePairs([], [])


def audit_folders(
    pred_dir: Path,
    gt_dir: Path,
    base: str,
    weights_dir: Path,
    device: str = "cpu",
    mask_dir: Path | None = None,
    batch: int = 16,
    match: str | None = None,
    native_dir: Path | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[list[AuditRow], MetricResult]:
    """The protocol audit of a folder of results: :func:`score_folders` under the paper's
    protocol ``base`` and under every convention of its task, each image read once; the rows
    and the paper protocol's result. ``native_dir``: the same predictions at the ground
    truth's size (a run's ``samples_native/``), which the conventions that do not resize
    score, while those that resize score ``pred_dir`` (the run's ``samples/``), as the run
    did. ``options``: the protocol's settings (a super-resolution scale)."""
    protocols = audit_protocols(base, weights_dir, device, options)
    reference = protocols[base]
    if mask_dir is not None and not reference.uses_mask:
        raise UsageError(f"protocol '{base}' takes no masks; drop --mask-dir")
    pairs = pair_files(reference, pred_dir, gt_dir, mask_dir, match_pattern(match))
    sized = check_sizes(reference, pairs)
    native = _native_pairs(protocols, reference, sized, native_dir, gt_dir, mask_dir)
    found: dict[str, MetricResult] = {}
    for group, pairs_read in (
        ([n for n in protocols if n not in native.names], sized),
        (native.names, native.pairs),
    ):
        if group:
            scored = score_pairs_under([protocols[n] for n in group], pairs_read, batch)
            found |= dict(zip(group, scored, strict=True))
    summaries = {name: found[name].summary for name in protocols}
    return audit_rows(base, summaries, reference.table), found[base]
