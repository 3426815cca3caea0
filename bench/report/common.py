"""Small pieces every report section uses: how runs are grouped and numbers and tables
printed, and how a published row is named."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

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


#: ``docs/protocols.md §2.1``, ``methods.md §5``, ``docs/statistics.md``: a reference to the
#: project's documentation, with or without its section
DOC_REFERENCE = re.compile(r"(?<![\w/.\[`])(?:docs/)?([a-z][a-z-]*)\.md(?: §(\d+(?:\.\d+)*))?")


def slug(heading_text: str) -> str:
    """The anchor GitHub and most Markdown viewers give a heading: lower case, punctuation
    dropped, spaces as hyphens ("2.1 ISTD" -> "21-istd")."""
    kept = re.sub(r"[^\w\- ]", "", heading_text.strip().lower())
    return kept.replace(" ", "-")


def section_heading(document: Path, section: str) -> str | None:
    """The heading of numbered ``section`` ("2.1", "5") in a Markdown file: a line such as
    ``### 2.1 ISTD`` or ``## 5. Native size``; None when the file has no such section."""
    pattern = re.compile(rf"^#+ {re.escape(section)}\.? (.*)$")
    for line in document.read_text(encoding="utf-8").splitlines():
        if pattern.match(line):
            return line.lstrip("#").strip()
    return None


def link_doc_references(text: str, docs_dir: Path | None, href: str) -> str:
    """Every reference to a page of ``docs_dir`` (and a section of it) as a Markdown link
    to ``<href>/<page>.md#<anchor>``. A reference to a page or section that does not exist,
    or text with no docs folder to resolve against, is left as written."""
    if docs_dir is None:
        return text

    def replace(found: re.Match) -> str:
        page, section = found[1], found[2]
        document = docs_dir / f"{page}.md"
        if not document.is_file():
            return found[0]
        target = f"{href}/{page}.md"
        if section:
            title = section_heading(document, section)
            if title is None:
                return found[0]
            target += f"#{slug(title)}"
        return f"[{found[0]}]({target})"

    return DOC_REFERENCE.sub(replace, text)
