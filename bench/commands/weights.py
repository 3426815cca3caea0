"""`bench weights`: show, download and import the LPIPS and Inception weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench import console
from bench import weights as weight_files
from bench.errors import BenchError
from bench.options import ConfigOption, JsonOption, QuietOption, examples, setup

app = typer.Typer(
    help="Weights the metrics need (LPIPS AlexNet, torch-fidelity Inception).",
    no_args_is_help=True,
)


@app.command(epilog=examples("bench weights status", "bench weights status --json"))
def status(
    config_path: ConfigOption = None, quiet: QuietOption = False, as_json: JsonOption = False
) -> None:
    """What is present in the weights folder, where, and whether its SHA-256 checks out."""
    config = setup(config_path, quiet, as_json)
    records = weight_files.status(config.paths.weights_dir)
    rows = [
        (r["key"], r["present"], r["verification"], r["sha256"][:16], r["path"], r["used_by"])
        for r in records
    ]
    columns = ["weights", "present", "verification", "sha256", "path", "used by"]
    console.emit(
        {"weights_dir": str(config.paths.weights_dir), "weights": records},
        console.table(f"weights in {config.paths.weights_dir}", columns, rows),
    )
    if any(r["present"] == "no" for r in records):
        console.info(f"missing weights: {weight_files.FIX_HINT}")


@app.command(epilog=examples("bench weights fetch alexnet"))
def fetch(
    keys: Annotated[
        list[str] | None,
        typer.Argument(help=f"Which weights [default: all: {', '.join(weight_files.WEIGHTS)}]."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Download even if a verified copy exists.")] = False,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Download from the official locations, check the SHA-256, and install atomically."""
    config = setup(config_path, quiet, as_json)
    keys = keys or list(weight_files.WEIGHTS)
    specs = [weight_files.get_spec(key) for key in keys]  # unknown names: exit 2 first
    results, failures = [], []
    for spec in specs:
        console.info(f"fetching {spec.filename} from {spec.url}")
        try:
            found = weight_files.fetch(spec.key, config.paths.weights_dir, force=force)
            results.append({"key": spec.key, **found.as_dict()})
        except BenchError as failure:
            failures.append(str(failure))
            results.append({"key": spec.key, "error": str(failure)})
    rows = [
        (r["key"], r.get("verification", "failed"), r.get("path", r.get("error"))) for r in results
    ]
    console.emit(results, console.table("weights fetch", ["weights", "result", "path"], rows))
    if failures:
        raise BenchError(f"{len(failures)} of {len(specs)} downloads failed: {failures[0]}")


@app.command("import", epilog=examples("bench weights import ~/alexnet-owt-7be5be79.pth"))
def import_(
    file: Annotated[Path, typer.Argument(help="The weights file obtained elsewhere.")],
    key: Annotated[
        str | None,
        typer.Option("--as", help="Which weights this is [default: from its name or hash]."),
    ] = None,
    allow_mismatch: Annotated[
        bool,
        typer.Option(help="Install even if the SHA-256 is not the official one (recorded)."),
    ] = False,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Verify a weights file and install it into the weights folder under its official name."""
    config = setup(config_path, quiet, as_json)
    found = weight_files.import_file(file, config.paths.weights_dir, key, allow_mismatch)
    if found.state == "mismatch":
        console.warn(f"{found.path} is not the official file; metrics using it are marked so")
    record = found.as_dict()
    console.emit(record, console.table("weights import", ["item", "value"], record.items()))
