"""`bench score`: score any folder of result images against ground truth under a protocol.

This is how the released outputs of a method are re-scored; the work is
``bench.scoring.score_folders``. The per-image CSV is written (atomically) only when scoring
succeeded, under the results folder, never among the user's images.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import console
from bench.errors import UsageError
from bench.files import atomic_write
from bench.options import ConfigOption, JsonOption, QuietOption, examples, setup

EPILOG = examples(
    "bench score results/istd data/istd/test/test_C --mask-dir data/istd/test/test_B -p istd",
    "bench score released/ data/istd/test/test_C -p istd --match '(?P<id>.+)_free'  # 95-1_free.png",
    "bench score results/istd data/istd/test/test_C -p istd --audit   # how much is convention",
    "bench score results/runs/RUN_ID data/istd/test/test_C --mask-dir data/istd/test/test_B "
    "--audit   # a run's whole audit again",
    "bench score released/Set14_x4 Set14/HR -p sr-y --scale 4 --match '(?P<id>.+)_x4_SR'",
)


def default_csv(results_dir: Path, pred_dir: Path, protocol: str) -> Path:
    """``<results_dir>/scores/<pred>-<path hash>_<protocol>.csv``: never inside the user's
    folders, and two prediction folders of the same name do not overwrite each other."""
    pred_dir = pred_dir.resolve()
    digest = hashlib.sha256(str(pred_dir).encode()).hexdigest()[:8]
    return results_dir / "scores" / f"{pred_dir.name}-{digest}_{protocol}.csv"


def _fmt(value: float) -> str:
    return str(value) if not math.isfinite(value) else f"{value:.4f}"


def score(
    pred_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of result images, or a run's folder (results/runs/RUN_ID), whose "
            "samples/ and samples_native/ are each scored where the run scored them."
        ),
    ],
    gt_dir: Annotated[Path, typer.Argument(help="Folder of ground-truth (or reference) images.")],
    protocol_name: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            "-p",
            help="Evaluation protocol, e.g. istd, lol, raindrop, gopro, sid, rgb, generation "
            "(an unknown name lists every registered one) [default: the paper protocol of the "
            "dataset GT belongs to, else rgb].",
        ),
    ] = None,
    mask_dir: Annotated[
        Path | None, typer.Option(help="Folder of shadow masks (istd: test_B).")
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            help="Per-image CSV [default: <results_dir>/scores/<pred>-<hash>_<protocol>.csv]."
        ),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option(
            help="Regular expression over prediction file stems; its group id (or first "
            "group) is the name to pair by, e.g. '(?P<id>.+)_free' for 95-1_free.png.",
        ),
    ] = None,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit",
            help="Score under every convention the literature uses for this protocol's task "
            "and show how far each headline number moves (docs/protocols.md).",
        ),
    ] = False,
    scale: Annotated[
        int | None,
        typer.Option(
            help="Super-resolution factor (2, 3, 4, 8) for the sr-y and sr-rgb protocols: the "
            "pixels shaved from each border and the ground truth's modcrop [default: 4].",
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    batch: Annotated[int, typer.Option(min=1, help="Images per evaluation batch.")] = 16,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Score a folder of result images against ground truth under a paper's protocol;
    with --audit, under every convention of its task, beside the paper's."""
    config = setup(config_path, quiet, as_json)
    import pandas as pd
    import torch

    from bench.protocols import get_protocol
    from bench.scoring import score_folders

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if protocol_name is None:
        protocol_name, why = default_protocol(gt_dir, config.paths.data_root)
        console.info(f"protocol {protocol_name}: {why}; pass --protocol to choose another")
    run_samples = run_folders(pred_dir)
    options = {}
    if scale is not None:
        if not protocol_name.startswith(("sr-", "sr3-")):
            raise UsageError(f"--scale is for the super-resolution protocols (sr-y, sr-rgb, sr3-faces), not '{protocol_name}'")  # fmt: skip
        options["scale"] = scale
    if audit:
        _audit(pred_dir, gt_dir, protocol_name, mask_dir, csv, match, device, batch, config, options)  # fmt: skip
        return
    protocol = get_protocol(protocol_name, config.paths.weights_dir, device, **options)
    if run_samples is not None:
        pred_dir = run_samples[0] if protocol.scores_loader_size else run_samples[1]
        console.info(
            f"{pred_dir.parent} is a run's folder: {protocol.name} scores {pred_dir.name}/"
        )
    result = score_folders(pred_dir, gt_dir, protocol, mask_dir, batch, match)
    if protocol.set_metrics:
        per_row = pd.DataFrame([{"n_images": len(result.per_image), **result.summary}])
    else:
        per_row = result.per_image
    csv = csv or default_csv(config.paths.results_dir, pred_dir, protocol.name)
    with atomic_write(csv, "w") as handle:
        per_row.to_csv(handle, index=False)

    for warning in result.warnings:
        console.warn(warning)
    rows = [(name, _fmt(value)) for name, value in result.summary.items()]
    rows += [(name, "unavailable (below)") for name in result.unavailable]
    title = f"protocol {protocol.name} — {protocol.table} — {result.meta['n_images']} images"
    console.emit(
        {
            "protocol": protocol.name,
            "table": protocol.table,
            "pred_dir": str(pred_dir),
            "gt_dir": str(gt_dir),
            "mask_dir": str(mask_dir) if mask_dir else None,
            "csv": str(csv),
            "summary": result.summary,
            "unavailable": result.unavailable,
            "meta": result.meta,
        },
        console.table(title, ["metric", "value"], rows),
    )
    # one line per reason (ISTD without masks: eight region metrics, one reason)
    reasons: dict[str, list[str]] = {}
    for name, reason in result.unavailable.items():
        reasons.setdefault(reason, []).append(name)
    for reason, names in reasons.items():
        console.warn(f"{', '.join(names)} unavailable: {reason}")
    console.info(f"per-image scores: {csv}")


def run_folders(folder: Path) -> tuple[Path, Path] | None:
    """``(samples, samples_native)`` when ``folder`` is a run's folder (results/runs/<id>):
    the predictions at the networks' size and at the files' size, which together reproduce
    the run's scores under every convention; None for a plain folder of images."""
    samples, native = folder / "samples", folder / "samples_native"
    return (samples, native) if samples.is_dir() and native.is_dir() else None


def default_protocol(gt_dir: Path, data_root: Path) -> tuple[str, str]:
    """The paper protocol of the registered dataset whose folder holds ``gt_dir``, else
    ``rgb``; with the reason, for the line that says which was taken."""
    from bench.data import dataset_names, get_dataset

    inside = gt_dir.resolve()
    for name in dataset_names():
        spec = get_dataset(name)
        if spec.kind != "unpaired" and inside.is_relative_to(spec.folder(data_root).resolve()):
            return spec.protocol, f"{gt_dir} is in dataset {name}'s folder"
    return "rgb", f"{gt_dir} is in no registered dataset's folder: a plain pair of folders"


def _audit(pred_dir, gt_dir, base, mask_dir, csv, match, device, batch, config, options) -> None:
    """`bench score --audit`: the audit table, its CSV, and --json."""
    import pandas as pd

    from bench.audit import format_value
    from bench.conventions import HEADLINES
    from bench.scoring import audit_folders

    native_dir = None
    if (run_samples := run_folders(pred_dir)) is not None:
        (pred_dir, native_dir), run = run_samples, pred_dir
        console.info(f"{run} is a run's folder: conventions that resize score samples/, those "
                     "at the files' size samples_native/, as the run did")  # fmt: skip
    rows, reference = audit_folders(
        pred_dir, gt_dir, base, config.paths.weights_dir, device, mask_dir, batch, match,
        native_dir, options,
    )  # fmt: skip
    titles = list(rows[0].values)
    spec = HEADLINES[base][0]
    yardstick = _value_yardstick(base, spec, reference.per_image, config.paths.weights_dir)
    csv = csv or default_csv(config.paths.results_dir, pred_dir, f"{base}-audit")
    frame = pd.DataFrame(
        [
            {"protocol": r.protocol, "change": r.change, "used_by": r.used_by}
            | {t: r.values[t] for t in titles}
            | {f"delta_{t}": r.deltas[t] for t in titles}
            for r in rows
        ]
    )
    with atomic_write(csv, "w") as handle:
        frame.to_csv(handle, index=False)
    table = console.table(
        f"protocol audit: {base}, each value with its move from the paper's script",
        ["convention", "protocol", "used by", *titles, *([yardstick.header] if yardstick else [])],
        [
            (r.change, r.scored_by, r.used_by)
            + tuple(format_value(r.values[t], r.deltas[t], i == 0) for t in titles)
            + ((yardstick.ratio(r, i == 0),) if yardstick else ())
            for i, r in enumerate(rows)
        ],
    )
    record = {"protocol": base, "csv": str(csv), "rows": [r.as_dict() for r in rows]}
    if yardstick:
        record["yardstick"] = {"metric": spec.key, "interval": yardstick.label,
                               "half_width": yardstick.half_width}  # fmt: skip
    console.emit(record, table)
    if yardstick:
        console.info(f"{spec.title}: {yardstick.label}; the last column divides each move by "
                     "its half-width (docs/statistics.md)")  # fmt: skip
    console.info(f"audit table: {csv}")


def _value_yardstick(base: str, spec: Any, per_image: Any, weights_dir: Path) -> Any:
    """A folder has no input to measure a method's gap against: the paper protocol's value's
    own 95% interval over the images, or None where it has none."""
    from bench.audit import Yardstick
    from bench.protocols import get_protocol
    from bench.statistics import estimate

    aggregate = get_protocol(base, weights_dir).aggregate(spec.key)
    if aggregate is None or aggregate.column not in per_image:
        return None
    found = estimate(per_image, aggregate)
    if found.ci_low is None:
        return None
    label = (
        f"the 95% interval of the paper protocol's value over these images is "
        f"[{found.ci_low:.4g}, {found.ci_high:.4g}]"
    )
    return Yardstick(spec.title, label, (found.ci_high - found.ci_low) / 2)
