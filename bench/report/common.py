"""Small pieces every report section uses: how runs are grouped and numbers and tables
printed, and how a published row is named."""

from __future__ import annotations

import math
from collections.abc import Iterable

from bench.report.published import PublishedTable, Row
from bench.report.reproduce import bench_method
from bench.report.runs import TrackedRun


def settings_key(run: TrackedRun) -> tuple:
    """Runs with equal keys differ only in seed."""
    return (
        run.method or "",
        run.dataset or "",
        run.profile or "",
        run.steps or 0,
        run.iterations or 0,
        run.image_size or 0,
        run.unet_dim or 0,
        tuple(sorted(run.options.items())),
    )


def by_seed(runs: Iterable[TrackedRun]) -> list[TrackedRun]:
    return sorted(runs, key=lambda r: (r.seed is None, r.seed or 0, r.run_id))


def format_number(value: float, decimals: int, significant: bool = False) -> str:
    """At the paper's precision; ``significant``: at least two significant digits (a CPU
    latency of 0.0012 s must not print as 0.00)."""
    if significant and value != 0 and math.isfinite(value):
        decimals = max(decimals, 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def bench_name(row: Row) -> str | None:
    found = bench_method(row)
    return found[0] if found else None


def heading(table: PublishedTable) -> str:
    """ "RDDM, CVPR 2024 Table 3(b)"; a file that is no table of the paper by its id."""
    return f"{table.paper} Table {table.table}" if table.table != "none" else table.id
