"""Scoring a folder of result images against ground truth under a protocol (`bench score`).

``score_folders(pred_dir, gt_dir, protocol, mask_dir)`` is the entry point for scripts; the
command mirrors it. Pairing uses the protocol's naming rule (file stems, minus suffixes such
as RainDrop's ``_clean``); every problem with the inputs is found before any metric runs.
Hidden files are ignored, as everywhere in bench.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from bench import console
from bench.audit import AuditRow, audit_rows
from bench.data.spec import IMAGE_SUFFIXES
from bench.data.verify import hidden
from bench.errors import BenchError, UsageError
from bench.files import read_image
from bench.metrics.result import MetricResult
from bench.protocols import Protocol
from bench.protocols.audit_scoring import audit_protocols


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
        if not protocol.resizes and shapes[0] != shapes[1]:
            raise UsageError(
                f"size mismatch: {pred} is {shapes[0][1]}x{shapes[0][0]} but {gt} is "
                f"{shapes[1][1]}x{shapes[1][0]}; protocol '{protocol.name}' does not resize"
            )
        if mask and shapes[2] != shapes[1]:
            raise UsageError(
                f"size mismatch: mask {mask} is {shapes[2][1]}x{shapes[2][0]} but its ground "
                f"truth {gt} is {shapes[1][1]}x{shapes[1][0]}"
            )
        sized.append((key, pred, gt, mask, shapes))
    return sized


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
    groups: dict[tuple, list] = defaultdict(list)
    for item in sized:
        groups[item[4]].append(item)
    parts: list[list[MetricResult]] = [[] for _ in protocols]
    label = protocols[0].name if len(protocols) == 1 else f"{len(protocols)} conventions"
    with console.progress_bar(f"scoring ({label})", len(sized)) as advance:
        for items in groups.values():
            for start in range(0, len(items), batch):
                chunk = items[start : start + batch]
                pred = torch.stack([_load(p) for _, p, _, _, _ in chunk])
                gt = torch.stack([_load(g) for _, _, g, _, _ in chunk])
                mask = torch.stack([_load(m, "L") for *_, m, _ in chunk]) if chunk[0][3] else None
                for protocol, results in zip(protocols, parts, strict=True):
                    results.append(protocol.evaluate(pred, gt, mask, [k for k, *_ in chunk]))
                advance(len(chunk))
    order = {item[0]: i for i, item in enumerate(sized)}
    merged = []
    for protocol, results in zip(protocols, parts, strict=True):
        result = protocol.combine(results)
        result.per_image = result.per_image.sort_values("name", key=lambda s: s.map(order))
        merged.append(result)
    return merged


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
) -> tuple[list[AuditRow], MetricResult]:
    """The protocol audit of a folder of results: :func:`score_folders` under the paper's
    protocol ``base`` and under every convention of its task, each image read once; the rows
    and the paper protocol's result. ``native_dir``: the same predictions at the ground
    truth's size (a run's ``samples_native/``), which the conventions that do not resize
    score, while those that resize score ``pred_dir`` (the run's ``samples/``), as the run
    did."""
    protocols = audit_protocols(base, weights_dir, device)
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
