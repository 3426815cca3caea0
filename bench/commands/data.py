"""`bench data`: list, fetch, verify, prepare and generate datasets."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import console
from bench.data import dataset_names, get_dataset, is_user_dataset, missing_message
from bench.data.spec import DatasetSpec
from bench.data.verify import (
    LOCK_NAME,
    DataError,
    dataset_files,
    fingerprint,
    read_lock,
    synth_info,
)
from bench.errors import BenchError
from bench.options import ConfigOption, JsonOption, QuietOption, examples, setup

app = typer.Typer(
    help="Datasets: list, add your own, fetch, verify, prepare, and generate the offline "
    "synthetic suites.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="Dataset name (see `bench data list`).")]
PathOption = Annotated[
    Path | None,
    typer.Option("--path", help="Dataset folder [default: <data_root>/<name>].", file_okay=False),
]


def _root(spec: DatasetSpec, data_root: Path, path: Path | None) -> Path:
    return path if path is not None else spec.folder(data_root)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def _status(root: Path) -> tuple[str, int]:
    if not root.is_dir():
        return "missing", 0
    size = sum(path.stat().st_size for path in dataset_files(root))
    return ("verified" if (root / LOCK_NAME).is_file() else "present"), size


def _report_problems(error: DataError) -> None:
    """Every finding beyond the first (which is the error line itself)."""
    for problem in error.problems[1:21]:
        console.warn(problem)
    if len(error.problems) > 21:
        console.warn(f"... {len(error.problems) - 21} more")


@app.command("list", epilog=examples("bench data list", "bench data list --json"))
def list_datasets(
    config_path: ConfigOption = None, quiet: QuietOption = False, as_json: JsonOption = False
) -> None:
    """Known datasets, yours beside the built-in ones: task, splits, status (missing, not
    generated for the offline suites, present, verified), size on disk and what to do next."""
    config = setup(config_path, quiet, as_json)
    records = [_dataset_record(name, config.paths.data_root) for name in dataset_names()]
    rows = [
        (
            r["name"] + (" (yours)" if r["source"] == "yours" else ""),
            r["task"],
            ", ".join(f"{s} {'?' if n is None else n}" for s, n in r["splits"].items()),
            r["status"],
            _human(r["size_bytes"]) if r["size_bytes"] else "-",
            r["next"],
        )
        for r in records
    ]
    table = console.table(
        f"datasets in {config.paths.data_root}",
        ["name", "task", "splits", "status", "size", "next"],
        rows,
    )
    console.emit(records, table)


def _dataset_record(name: str, data_root: Path) -> dict[str, Any]:
    """One dataset's line of `bench data list`: where it is, its state, and what to do next."""
    spec = get_dataset(name)
    root = spec.folder(data_root)
    status, size = _status(root)
    info = synth_info(root) if spec.synthetic and status != "missing" else None
    if spec.synthetic and status == "missing":  # made offline on first use, not fetched
        status = "not generated"
    next_step = {
        "not generated": f"bench data synth {name} (or any bench run on it)",
        "missing": f"bench data fetch {name}",
        "present": f"bench data verify {name}",
    }.get(status, "")
    if info is None and status == "verified":  # the counts the lock recorded
        info = read_lock(root)
    return {
        "name": name,
        "task": spec.task,
        "protocol": spec.protocol,
        "synthetic": spec.synthetic,
        "source": "yours" if is_user_dataset(name) else "built-in",
        "splits": {s: info["counts"].get(s) for s in spec.splits} if info else spec.splits,
        "status": status,
        "size_bytes": size,
        "path": str(root),
        "fingerprint": fingerprint(root) if status == "verified" else None,
        "next": next_step,
    }


@app.command(epilog=examples("bench data fetch cifar10"))
def fetch(
    name: NameArgument,
    path: PathOption = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Download a dataset with direct links (resumable, checked against the published
    checksums), or print what to fetch by hand and the checksums of those files."""
    from bench.data import ensure_dataset
    from bench.data.fetch import download, extract
    from bench.data.prepare import prepare

    config = setup(config_path, quiet)
    spec = get_dataset(name)
    root = _root(spec, config.paths.data_root, path)
    if spec.synthetic:
        root = ensure_dataset(name, root.parent) if path is None else root
        console.info(f"{name} is generated offline: `bench data synth {name}` ({root})")
        return
    if not spec.downloads:
        typer.echo(spec.manual.strip().replace("{root}", str(root)))
        if spec.manual_files:
            typer.echo("Files, with what `bench data prepare` checks before reading them:")
            for item in spec.manual_files:
                typer.echo(f"  {item.describe()}")
        raise BenchError(f"{name} needs a manual download: follow the instructions above")
    downloads = config.paths.data_root / "downloads"
    for item in spec.downloads:
        console.info(f"fetching {item.url}")
        archive = download(item, downloads, partial(console.progress_bar, item.file))
        if item.extract:
            console.info(f"extracting {archive.name} into {root}")
            extract(archive, root)
    if spec.prepare is not None:
        console.info(prepare(spec, root))
    console.info(f"done; now run `bench data verify {name}`")


@app.command(epilog=examples("bench data verify istd --path /data/ISTD"))
def verify(
    name: NameArgument,
    path: PathOption = None,
    relock: Annotated[
        bool, typer.Option("--relock", help="Accept changed files and rewrite the lock file.")
    ] = False,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Check counts, decoding, pairing and pair sizes; write or check the SHA-256 lock file."""
    from bench.data.verify import verify as run_verify

    config = setup(config_path, quiet, as_json)
    spec = get_dataset(name)
    root = _root(spec, config.paths.data_root, path)
    if not root.is_dir():
        raise BenchError(missing_message(spec, root))
    total = len(dataset_files(root))
    try:
        with console.progress_bar(f"hashing {name}", total) as advance:
            report = run_verify(spec, root, relock=relock, advance=advance)
    except DataError as error:
        _report_problems(error)
        raise
    record = {
        "name": name,
        "path": str(root),
        "counts": report.counts,
        "files": report.files,
        "lock": str(root / LOCK_NAME),
        "lock_written": report.relocked,
        "fingerprint": report.fingerprint,
    }
    rows = [(f"split {split}", count) for split, count in report.counts.items()]
    rows += [(key, record[key]) for key in ("path", "files", "lock", "fingerprint")]
    console.emit(record, console.table(f"{name}: verified", ["item", "value"], rows))


@app.command(epilog=examples("bench data prepare gopro"))
def prepare(
    name: NameArgument,
    path: PathOption = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Convert a dataset from its distributed layout to the canonical layout the loaders read."""
    from bench.data.prepare import prepare as run_prepare

    config = setup(config_path, quiet)
    spec = get_dataset(name)
    typer.echo(run_prepare(spec, _root(spec, config.paths.data_root, path)))


@app.command(epilog=examples("bench data synth synth-shadow --seed 1 --out /tmp/shadow"))
def synth(
    name: NameArgument,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder [default: <data_root>/<name>].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    train_count: Annotated[int | None, typer.Option(help="Training images.")] = None,
    test_count: Annotated[int | None, typer.Option(help="Test images.")] = None,
    patch: Annotated[int | None, typer.Option(help="Training crop size in pixels.")] = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate an offline suite from scikit-image's photos (deterministic for a given seed)."""
    from bench.data.synth import generate

    config = setup(config_path, quiet, as_json)
    spec = get_dataset(name)
    overrides = {"train_count": train_count, "test_count": test_count, "patch": patch}
    root = generate(spec, _root(spec, config.paths.data_root, out), seed, overrides)
    record = {"name": name, "path": str(root), "seed": seed, "fingerprint": fingerprint(root)}
    console.emit(record, console.table(f"{name}: generated", ["item", "value"], record.items()))


LAYOUT_HELP = (
    "auto (recognise it), pairs (input/+target/, lq/+gt/, low/+high/), triplets (A/+B/+C/ "
    "as ISTD, input/+mask/+target/) or single (images only)."
)


@app.command(
    epilog=examples(
        "bench data add mypairs --path ~/pairs --task deraining",
        "bench data add myistd --path ~/ISTD_Dataset   # train/train_A ... test/test_C",
        "bench data add lab --path ~/lab --task low-light --test-fraction 0.1",
    )
)
def add(
    name: NameArgument,
    path: Annotated[Path, typer.Option("--path", help="Your folder of images.", file_okay=False)],
    layout: Annotated[str, typer.Option("--layout", help=LAYOUT_HELP)] = "auto",
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="What the pairs are for (needed for pairs) [default: shadow-removal for "
            "triplets, generation for single images].",
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="How results are scored [default: istd for triplets, rgb (native size) for "
            "pairs, celeba (FID) for single images].",
        ),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            "--test-fraction",
            help="For a folder without train/ and test/: the share of pairs, chosen by a hash "
            "of the file name, that forms the test split [default: 0.2].",
        ),
    ] = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Register your own folder as a dataset (its manifest goes to [paths] user_datasets).

    Pairs are matched by file stem, never by order. Nothing is registered unless every file
    has its partners, decodes, and agrees in size with them; then `bench run NAME`,
    `bench data verify NAME` and `bench report` treat it like any other dataset.
    """
    from bench.data.layout import register

    config = setup(config_path, quiet, as_json)
    total = len(dataset_files(path)) if path.is_dir() else 0
    with console.progress_bar(f"hashing {name}", total) as advance:
        spec, report, detected = register(
            name, path, config.paths.user_datasets, layout, task, protocol, test_fraction,
            advance,
        )  # fmt: skip
    record = {
        "name": name,
        "path": str(spec.root),
        "layout": detected.describe(),
        "task": spec.task,
        "protocol": spec.protocol,
        "counts": report.counts,
        "split_rule": spec.split_rule,
        "manifest": str(spec.manifest),
        "fingerprint": report.fingerprint,
    }
    rows = [(key, value) for key, value in record.items() if key != "counts" and value]
    rows += [(f"split {split}", count) for split, count in report.counts.items()]
    console.emit(record, console.table(f"{name}: registered", ["item", "value"], rows))
    console.info(f"next: `bench run {name}`")


@app.command(epilog=examples("bench data remove mypairs"))
def remove(
    name: NameArgument, config_path: ConfigOption = None, quiet: QuietOption = False
) -> None:
    """Unregister a dataset you added (its folder and images stay untouched)."""
    from bench.data.layout import unregister

    config = setup(config_path, quiet)
    manifest = unregister(name, config.paths.user_datasets)
    console.info(f"removed {manifest}; the images were not touched")
