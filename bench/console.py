"""Output shared by every command: messages, tables, --json, -q and progress bars.

Results go to stdout (a rich table, or one JSON document with ``--json``);
messages and progress bars go to stderr, so ``bench ... --json | jq`` stays clean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


@dataclass
class OutputState:
    quiet: bool = False
    json: bool = False


state = OutputState()
out = Console(soft_wrap=True)
if not out.is_terminal:
    out.width = 200  # piped or captured: tables at their natural width, not cut to 80 columns
err = Console(stderr=True, soft_wrap=True)


def info(message: str) -> None:
    """A progress or status message; silenced by -q and by --json."""
    if not (state.quiet or state.json):
        err.print(message)


def warn(message: str) -> None:
    """A warning; always shown (on stderr). Brackets in the message are printed as typed."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings rather than emit invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def emit(data: Any, table: Table | None = None) -> None:
    """Print a command's result: JSON with --json, else the table (if any)."""
    if state.json:
        out.print_json(json.dumps(_finite(data), default=_json_default))
    elif table is not None:
        out.print(table)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A plain rich table; cells are printed with str()."""
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


@contextmanager
def quiet() -> Iterator[None]:
    """Messages and progress bars off inside the block (work nested in a progress bar:
    one live display at a time)."""
    before, state.quiet = state.quiet, True
    try:
        yield
    finally:
        state.quiet = before


#: without a terminal (a log file, a CI job), a progress line at most this often
LOG_EVERY_SECONDS = 30.0


@contextmanager
def progress_bar(description: str, total: float | None) -> Iterator[Any]:
    """A progress bar on stderr; yields ``advance(n=1, **fields)``. Fields (``loss=0.03``)
    are shown beside the bar. Without a terminal it prints a line at most every 30 s (and
    at the end) instead; nothing with -q or --json."""
    if state.quiet or state.json:
        yield lambda n=1, **fields: None
        return
    if not err.is_terminal:
        yield _progress_lines(description, total)
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(n: float = 1, **fields: Any) -> None:
            bar.update(task, advance=n, status=_fields(fields))

        yield advance


def _fields(fields: dict[str, Any]) -> str:
    return " ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()
    )


def _progress_lines(description: str, total: float | None):
    import time

    started = last = time.monotonic()
    done = 0.0
    first: tuple[float, float] | None = None  # (time, count) at the first step's end

    def advance(n: float = 1, **fields: Any) -> None:
        nonlocal done, last, first
        done += n
        now = time.monotonic()
        if first is None:
            # the first step carries the warm-up (allocation, caches, lazy imports): the rate
            # is measured from its end, or the first estimate is many times too long
            first = (now, done)
        finished = total is not None and done >= total
        if now - last < LOG_EVERY_SECONDS and not finished:
            return
        last = now
        elapsed = now - started
        count = f"{done:g}/{total:g}" if total else f"{done:g}"
        since, counted = now - first[0], done - first[1]
        eta = (
            f", about {since / counted * (total - done):.0f} s left"
            if total and counted > 0 and done < total
            else ""
        )
        status = f" {_fields(fields)}" if fields else ""
        err.print(f"{description}: {count}{status} ({elapsed:.0f} s{eta})", highlight=False)

    return advance
