"""`bench compare A B`: is A's difference from B real? Paired intervals and tests per metric,
and how far apart their output images are (bit-identical or not, image by image).

A and B are two tracked runs (MLflow run ids: their logged per-image scores and samples) or
two folders of result images scored here against ``--gt`` under ``--protocol``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import console
from bench.errors import UsageError
from bench.options import ConfigOption, JsonOption, QuietOption, TrackingUriOption, examples, setup

EPILOG = examples(
    "bench compare 3f2a... 9c1b...             # two runs of one store (bench ui)",
    "bench compare out/rddm out/sr3 --gt data/istd/test/test_C \\",
    "    --mask-dir data/istd/test/test_B --protocol istd   # two folders of outputs",
    "bench compare RUN_A RUN_B --json          # for scripts",
)


@dataclass
class Side:
    """One side of a comparison: its per-image scores, output files and where it ran."""

    label: str
    per_image: Any
    summary: dict[str, float]
    files: dict[str, Path]
    protocol: str
    hardware: dict[str, str]


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "–" if value is None else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def compare(
    a: Annotated[str, typer.Argument(help="An MLflow run id, or a folder of result images.")],
    b: Annotated[str, typer.Argument(help="The other run id, or folder.")],
    gt: Annotated[
        Path | None,
        typer.Option(help="With folders: the ground-truth folder both are scored against."),
    ] = None,
    protocol_name: Annotated[
        str | None,
        typer.Option(
            "--protocol", "-p", help="With folders: the evaluation protocol (istd, lol, ...)."
        ),
    ] = None,
    mask_dir: Annotated[
        Path | None, typer.Option(help="With folders: shadow masks (istd: test_B).")
    ] = None,
    match: Annotated[
        str | None,
        typer.Option(help="With folders: pattern naming predictions, as for `bench score`."),
    ] = None,
    resamples: Annotated[
        int, typer.Option(min=100, help="Bootstrap and permutation resamples.")
    ] = 10_000,
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Confidence level of the intervals.")
    ] = 0.95,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the resampling.")] = 0,
    tracking_uri: TrackingUriOption = None,
    device: Annotated[str, typer.Option(help="With folders: cpu or cuda for scoring.")] = "cpu",
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Compare A with B image by image: for each metric of the protocol, A − B with a paired
    bootstrap interval (BCa), the Wilcoxon signed-rank and paired permutation p-values, the
    images and A's wins; then whether their outputs are bit-identical."""
    from bench.comparisons import compare_tables, output_difference
    from bench.protocols import get_protocol
    from bench.statistics import BootstrapSettings

    overrides = {"tracking": {"uri": tracking_uri}} if tracking_uri else None
    config = setup(config_path, quiet, as_json, overrides)
    settings = BootstrapSettings(resamples=resamples, confidence=confidence, seed=seed)
    if Path(a).is_dir() and Path(b).is_dir():
        if gt is None or protocol_name is None:
            raise UsageError("comparing two folders needs --gt DIR and --protocol NAME")
        protocol = get_protocol(protocol_name, config.paths.weights_dir, device)
        sides = [_score_folder(Path(x), gt, protocol, mask_dir, match) for x in (a, b)]
    else:
        _refuse_a_folder_beside_a_run(a, b)
        if gt or protocol_name or mask_dir or match:
            raise UsageError("--gt, --protocol, --mask-dir and --match are for folders; runs "
                             "carry their own protocol")  # fmt: skip
        sides = _read_runs(config.tracking_uri(), a, b)
        protocol = get_protocol(sides[0].protocol, config.paths.weights_dir)
    metrics = compare_tables(
        sides[0].per_image, sides[1].per_image, protocol, settings, ("A", "B"),
        (sides[0].summary, sides[1].summary),
    )  # fmt: skip
    outputs = output_difference(sides[0].files, sides[1].files)
    record = {
        "a": sides[0].label,
        "b": sides[1].label,
        "protocol": protocol.name,
        "settings": settings.as_dict() | {"intervals": "paired bootstrap over images"},
        "metrics": {key: result.as_dict() for key, result in metrics.items()},
        "outputs": outputs.as_dict(),
        "hardware": {"a": sides[0].hardware, "b": sides[1].hardware},
    }
    level = f"{100 * confidence:g}%"
    table = console.table(
        f"A − B under {protocol.name}: {level} paired bootstrap (BCa, {resamples} resamples, "
        f"seed {seed}) over images",
        ["metric", "A − B", f"{level} CI", "p Wilcoxon", "p permutation", "A wins", "note"],
        [_difference_row(key, result.as_dict()) for key, result in metrics.items()],
    )
    console.emit(record, table)
    console.info(f"A = {sides[0].label}; B = {sides[1].label}")
    console.info(outputs.describe())
    _say_hardware_differences(sides[0].hardware, sides[1].hardware)


def _refuse_a_folder_beside_a_run(a: str, b: str) -> None:
    for folder, other in ((a, b), (b, a)):
        if Path(folder).is_dir():
            raise UsageError(
                f"{folder} is a folder but {other} is not: compare two folders, or two run ids"
            )


def _read_runs(uri: str, a: str, b: str) -> list[Side]:
    """Two runs of one protocol."""
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as scratch:
        sides = [_read_run(uri, x, Path(scratch)) for x in (a, b)]
    if sides[0].protocol != sides[1].protocol:
        raise UsageError(
            f"run {a} was scored under {sides[0].protocol} and {b} under "
            f"{sides[1].protocol}: compare runs of one protocol"
        )
    return sides


def _difference_row(key: str, entry: dict[str, Any]) -> tuple[str, ...]:
    interval = (
        f"[{_fmt(entry['ci_low'])}, {_fmt(entry['ci_high'])}]"
        if entry["ci_low"] is not None
        else "–"
    )
    wins = "–" if entry["a_wins"] is None else f"{entry['a_wins']}/{entry['n_images']}"
    return (key, _fmt(entry["mean_diff"]), interval, _p(entry["p_wilcoxon"]),
            _p(entry["p_permutation"]), wins, entry["note"] or "")  # fmt: skip


def _say_hardware_differences(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Each hardware record where the two runs differ (another CPU picks other kernels)."""
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            console.info(f"hardware {key}: A {a.get(key) or 'unrecorded'}; B {b.get(key) or 'unrecorded'}")  # fmt: skip


def _score_folder(folder: Path, gt: Path, protocol: Any, mask_dir, match) -> Side:
    from bench.scoring import match_pattern, pair_files, score_folders

    result = score_folders(folder, gt, protocol, mask_dir, match=match)
    if protocol.set_metrics:
        files: dict[str, Path] = {}
    else:
        pairs = pair_files(protocol, folder, gt, mask_dir, match_pattern(match))
        files = {key: prediction for key, prediction, _, _ in pairs}
    return Side(str(folder), result.per_image, result.summary, files, protocol.name, {})


def _read_run(uri: str, run_id: str, scratch: Path) -> Side:
    """A run's per-image scores (its ``per_image.csv``), summary, samples and hardware."""
    import pandas as pd

    from bench.conventions import MetricKey
    from bench.report.runs import unreachable
    from bench.tracking import mlflow_client

    client = mlflow_client(uri)
    try:
        run = client.get_run(run_id)
    except Exception as error:
        if "not found" in str(error).lower() or "RESOURCE_DOES_NOT_EXIST" in str(error):
            raise UsageError(
                f"'{run_id}' is neither a folder nor a run of {uri}; pass two run ids of this "
                "store (`bench ui` shows them) or two folders"
            ) from None
        raise unreachable(uri, error) from None
    tags = dict(run.data.tags)
    protocol = tags.get("protocol")
    if protocol is None:
        raise UsageError(f"run {run_id} has no protocol tag: it scored nothing to compare")
    try:
        local = client.download_artifacts(run_id, "per_image.csv", str(scratch / run_id))
    except Exception:
        raise UsageError(
            f"run {run_id} logged no per-image scores (per_image.csv); runs of this version "
            "log them, as does `bench score` for folders"
        ) from None
    per_image = pd.read_csv(local)
    summary = {}
    for key, value in run.data.metrics.items():
        name = MetricKey.parse(key)
        if name is not None and name.stream == "result":
            summary[name.metric] = value
    files = _sample_files(Path(tags.get("samples_dir", "")), per_image["name"])
    hardware = {
        k.removeprefix("hardware."): v for k, v in tags.items() if k.startswith("hardware.")
    }
    if "hardware" in tags:
        hardware.setdefault("summary", tags["hardware"])
    seed = run.data.params.get("cell.seed")
    label = f"run {run_id} ({tags.get('method', '?')}{'' if seed is None else f', seed {seed}'})"
    return Side(label, per_image, summary, files, protocol, hardware)


def _sample_files(samples: Path, names: Any) -> dict[str, Path]:
    """The run's sample PNG of each scored image, where it is still on disk."""
    if not samples.is_dir():
        return {}
    files = {str(name): samples / f"{name}.png" for name in names}
    return {name: path for name, path in files.items() if path.is_file()}
