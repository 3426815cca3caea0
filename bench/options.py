"""Options and setup shared by every command module (bench/commands/*)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bench import console
from bench.config import Config, load_config

#: the command line as typed after ``bench`` (click's context meta, set by bench.cli), for
#: messages that print a command to run next
ARGV_KEY = "bench.argv"

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Configuration file [default: ./bench.toml, else the packaged defaults].",
        dir_okay=False,
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results and errors.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI: a SQLite file, a database (postgresql://...) or a tracking "
        "server (http://...) [default: tracking.uri, else MLFLOW_TRACKING_URI, else "
        "<results_dir>/mlflow.db]."
    ),
]
ExperimentOption = Annotated[
    str | None, typer.Option(help="MLflow experiment [default: tracking.experiment].")
]


def examples(*lines: str) -> str:
    """A command's epilog: its example command lines, kept as written (click rewraps every
    other paragraph to the terminal width; ``\\b`` marks one it must not)."""
    return "Examples:\n\n\b\n" + "\n".join(lines)


def setup(
    config_path: Path | None = None,
    quiet: bool = False,
    as_json: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Apply the shared output flags and load the validated config (exit 2 if invalid)."""
    console.state.quiet = quiet
    console.state.json = as_json
    return load_config(config_path, overrides)
