"""`bench data`: list, fetch, verify, prepare and generate datasets."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from bench import console
from bench.data import DATASETS, get_dataset, missing_message
from bench.data.spec import DatasetSpec
from bench.data.verify import LOCK_NAME, DataError, dataset_files, fingerprint, synth_info
from bench.errors import BenchError
from bench.options import ConfigOption, JsonOption, QuietOption, setup

app = typer.Typer(
    help="Datasets: list, fetch, verify, prepare, and generate the offline synthetic suites.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="Dataset name (see `bench data list`).")]
PathOption = Annotated[
    Path | None,
    typer.Option("--path", help="Dataset folder [default: <data_root>/<name>].", file_okay=False),
]


def _root(spec: DatasetSpec, data_root: Path, path: Path | None) -> Path:
    return path if path is not None else data_root / spec.name


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


@app.command("list", epilog="Example: [bold]bench data list --json[/bold]")
def list_datasets(
    config_path: ConfigOption = None, quiet: QuietOption = False, as_json: JsonOption = False
) -> None:
    """Known datasets with task, splits, status (missing / present / verified) and size on disk."""
    config = setup(config_path, quiet, as_json)
    records = []
    for name in DATASETS:
        spec = get_dataset(name)
        root = config.paths.data_root / name
        status, size = _status(root)
        info = synth_info(root) if spec.synthetic and status != "missing" else None
        records.append(
            {
                "name": name,
                "task": spec.task,
                "protocol": spec.protocol,
                "synthetic": spec.synthetic,
                "splits": {s: info["counts"].get(s) for s in spec.splits} if info else spec.splits,
                "status": status,
                "size_bytes": size,
                "path": str(root),
                "fingerprint": fingerprint(root) if status == "verified" else None,
            }
        )
    rows = [
        (
            r["name"],
            r["task"],
            ", ".join(f"{s} {'?' if n is None else n}" for s, n in r["splits"].items()),
            r["status"],
            _human(r["size_bytes"]) if r["status"] != "missing" else "-",
        )
        for r in records
    ]
    table = console.table(
        f"datasets in {config.paths.data_root}", ["name", "task", "splits", "status", "size"], rows
    )
    console.emit(records, table)


@app.command(epilog="Example: [bold]bench data fetch cifar10[/bold]")
def fetch(
    name: NameArgument,
    path: PathOption = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Download a dataset with direct links (resumable, checksummed), or print what to fetch by hand."""
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


@app.command(epilog="Example: [bold]bench data verify istd --path /data/ISTD[/bold]")
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


@app.command(epilog="Example: [bold]bench data prepare gopro[/bold]")
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


@app.command(
    epilog="Example: [bold]bench data synth synth-shadow --seed 1 --out /tmp/shadow[/bold]"
)
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
