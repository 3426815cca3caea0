"""The report: the papers' tables as printed, with bench's measured rows beside them.

Layout of every mirrored table: the published rows exactly as printed; under each row a
bench method reproduces, one "bench (<profile>)" row per profile with matching runs (or
one row of dashes when nothing matched), then a Δ row (measured − published, metric
columns). A measured cell is the mean over seeds (± sample std and n when n > 1); it
links to its run and its footnote names the protocol, settings, hardware and every run.
A dash cell's footnote is the exact ``bench run`` command that fills it.

Matching (bench/report/reproduce.py): a finished cell run fills a slot when its method,
dataset, sampling steps and the slot's method options (β̄²_T, schedule, objective) are
those the table states, and for SR3 its iterations. Profile, iterations and image size
are otherwise not matched: they are shown, and runs of each profile get their own row.

The Markdown is a pure function of the runs: everything is sorted, nothing depends on
the clock, so the same runs give byte-identical text.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.conventions import VARIANTS, MetricKey, base_of
from bench.report.common import (
    by_seed,
    format_number,
    heading,
    link_doc_references,
    md_table,
    settings_key,
    slug,
)
from bench.report.measured import audit_markdown, measured_markdown
from bench.report.published import ABSENT, Display, PublishedCell, PublishedTable, Row
from bench.report.reproduce import (
    PROFILE,
    Slot,
    command,
    reported_tables,
    table_slots,
)
from bench.report.runs import Store, TrackedRun, same_value
from bench.report.summary import Group, measured_interval, summary_groups, summary_markdown
from bench.report.table11 import resources_markdown, table11_markdown

REGIONS = {"all": "all", "shadow": "s", "non-shadow": "ns"}
#: Table 11's columns -> profile metrics; the paper's counts are THOP's (bench/cost.py)
RESOURCE_METRICS = {
    "params_m": "profile/params_thop_m",
    "macs_per_step_g": "profile/gmacs_thop_step",
    "macs_g": "profile/gmacs_thop_image",
    "time_per_step_s": "profile/latency_step_s",
    "time_s": "profile/latency_image_s",
}
#: resource columns measured on bench's hardware: a difference to the paper's GPU is no Δ


def metric_key(cell: PublishedCell) -> str | None:
    """The MLflow metric a published cell compares with (None: bench measures no such). A
    paper protocol is a run's own result (``istd/psnr_all``); a variant of it (another
    resolution or colour space) is what the run's audit logged (``audit/istd-origin/psnr_all``)."""
    column = cell.column
    if column.kind == "resource":
        return RESOURCE_METRICS.get(column.key)
    stream = "audit" if cell.protocol in VARIANTS else "result"
    if base_of(cell.protocol) == "istd" and column.metric != "lpips":
        region = REGIONS[cell.settings.get("region", "all")]
        # RDDM's MAE is read as the per-image mean (PI); PP is in the footnote (docs/protocols.md §2.1)
        suffix = "_pi" if column.metric == "mae" else ""
        return str(MetricKey(cell.protocol, f"{column.metric}_{region}{suffix}", stream))
    return str(MetricKey(cell.protocol, column.metric, stream))


VERDICT_NOTE = (
    "Reproduction verdict: the published value against the 95% interval of the measured one: "
    "a bootstrap over the test images for one seed, over seeds and images together for "
    "several (docs/statistics.md). The paper prints no interval, so the verdict treats its "
    "number as exact and as scored by the same protocol on the same test images; "
    '"consistent" means the paper\'s number lies within what this measurement could give on '
    "another draw of test images (and seeds), not that the two runs agree in anything else."
)


def mismatch(slot: Slot, run: TrackedRun) -> str | None:
    """Why ``run`` does not fill ``slot`` (None: it does)."""
    wanted = [("method", slot.method, run.method), ("dataset", slot.dataset, run.dataset)]
    if slot.steps is not None:
        wanted.append(("steps", slot.steps, run.params.get("cell.steps")))
    if slot.iterations is not None:
        wanted.append(("iterations", slot.iterations, run.params.get("cell.iterations")))
    if run.tags.get("eval_subset") == "yes":  # a paper cell holds the whole test split
        return f"scored a subset of the test split ({run.tags.get('eval_images')} images)"
    options = run.options
    wanted += [(f"options.{k}", v, options.get(k)) for k, v in slot.options]
    for name, value, logged in wanted:
        if logged is None:
            return f"no {name} recorded"
        if not same_value(logged, value):
            return f"{name} {logged}"
    return None


@dataclass
class Footnotes:
    """Numbered by first use; identical texts share one number."""

    texts: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[^{self.texts.index(text) + 1}]"

    def markdown(self) -> str:
        return "\n".join(f"[^{i}]: {text}" for i, text in enumerate(self.texts, 1))


@dataclass
class Completeness:
    table_id: str
    title: str
    slots: int
    filled_paper: int
    filled_any: int


@dataclass
class _Filled:
    """One measured row as it is filled slot by slot: per column key, the text shown, the
    mean behind it (None: not measured), its interval, and the steps sampled with."""

    texts: dict[str, str] = field(default_factory=dict)
    means: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)


class ReportBuilder:
    """Builds the Markdown for one store; plots are named here and drawn by plots.py."""

    def __init__(
        self,
        store: Store,
        tables: Mapping[str, PublishedTable] | None = None,
        all_tables: bool = False,
    ):
        self.store = store
        self.tables = reported_tables(tables)
        self.all_tables = all_tables
        self.notes = Footnotes()
        self.cells = [r for r in store.runs if r.kind == "cell"]
        self.finished = [r for r in self.cells if r.finished]
        self.placed: set[str] = set()
        self.warnings: list[str] = []

    # --- matching ---------------------------------------------------------------------

    def matching(self, slot: Slot) -> list[TrackedRun]:
        return [r for r in self.finished if mismatch(slot, r) is None]

    def groups(self, slot: Slot, profile: str) -> list[list[TrackedRun]]:
        """Matching runs of one profile, grouped by settings; the most trained first."""
        found: dict[tuple, list[TrackedRun]] = {}
        for run in self.matching(slot):
            if (run.profile or "unknown") == profile:
                found.setdefault(settings_key(run), []).append(run)
        ordered = sorted(
            found.items(), key=lambda kv: (-kv[0][4], -kv[0][5], -len(kv[1]), repr(kv[0]))
        )
        return [by_seed(runs) for _, runs in ordered]

    def completeness(self, table: PublishedTable) -> Completeness:
        slots = list({slot.key: slot for slot in table_slots(table)}.values())
        matched = [self.matching(slot) for slot in slots]
        return Completeness(
            table.id,
            f"{heading(table)}: {table.title}",
            len(slots),
            sum(any(r.profile == PROFILE for r in runs) for runs in matched),
            sum(bool(runs) for runs in matched),
        )

    # --- one measured cell --------------------------------------------------------------

    def link(self, run: TrackedRun) -> str:
        return self.store.url(run)

    def group_note(self, slot: Slot, runs: list[TrackedRun], others: int) -> str:
        parts = settings_note(runs[0], slot)
        pp = self.per_pixel_mae(runs) if slot.protocol == "istd" else ""
        if pp:
            parts.append(pp)
        links = ", ".join(
            f"[seed {r.seed if r.seed is not None else '?'}]({self.link(r)})" for r in runs
        )
        parts.append(f"n = {len(runs)}: {links}")
        parts += [self.continued(run) for run in runs if run.tags.get("resumed_from_run")]
        if others:
            parts.append(f"{others} other matching run setting(s) not shown (fewer iterations)")
        return "; ".join(parts) + "."

    def continued(self, run: TrackedRun) -> str:
        """Which run a resumed run continued, linked when the store still holds it."""
        earlier_id = run.tags["resumed_from_run"]
        earlier = next((r for r in self.store.runs if r.run_id == earlier_id), None)
        named = f"[{earlier_id[:8]}]({self.link(earlier)})" if earlier else f"{earlier_id[:8]}"
        iteration = run.tags.get("resumed_from_iteration", "?")
        return f"seed {run.seed} resumed at iteration {iteration} the training of run {named}"

    def per_pixel_mae(self, runs: list[TrackedRun]) -> str:
        values = []
        for region, label in (("all", "ALL"), ("s", "S"), ("ns", "NS")):
            found = [
                r.metrics[f"istd/mae_{region}_pp"]
                for r in runs
                if f"istd/mae_{region}_pp" in r.metrics
            ]
            if found:
                values.append(f"{label} {statistics.fmean(found):.2f}")
        if not values:
            return ""
        return "MAE is the per-image mean (PI); per-pixel (PP): " + ", ".join(values)

    def measured(
        self,
        slot: Slot,
        runs: list[TrackedRun],
        others: int,
        key: str,
        decimals: int,
        significant: bool,
    ) -> tuple[str, float | None]:
        """A cell's text and mean (None when nothing was measured)."""
        values = [r.metrics[key] for r in runs if key in r.metrics]
        self.placed.update(r.run_id for r in runs)
        if not values:
            reasons = sorted({r.unavailable(key) for r in runs if r.unavailable(key)})
            if reasons:
                return "unavailable" + self.notes(
                    f"`{key}` unavailable: {'; '.join(reasons)}."
                ), None
            ids = ", ".join(f"[{r.run_id[:8]}]({self.link(r)})" for r in runs)
            note = f"`{key}` was not recorded by run(s) {ids} (an older harness, or not logged)."
            return ABSENT + self.notes(note), None
        mean = statistics.fmean(values)
        text = format_number(mean, decimals, significant)
        if len(values) > 1:
            std = statistics.stdev(values)
            text += f" ± {format_number(std, decimals, significant)} (n={len(values)})"
        else:
            text = f"[{text}]({self.link(next(r for r in runs if key in r.metrics))})"
        return text + self.notes(self.group_note(slot, runs, others)), mean

    def not_run(self, slot: Slot, profile: str) -> str:
        return ABSENT + self.notes(f"Not run yet: `{command(slot.planned(profile))}`")

    # --- one table ----------------------------------------------------------------------

    def layout(self, table: PublishedTable) -> list[tuple[str, str | Display]]:
        """(header, column key or display) in printed order, as ``printed_rows`` shows."""
        shown_in = {name: d for d in table.displays for name in d.fields}
        entries: list[tuple[str, str | Display]] = []
        for column in table.columns:
            display = shown_in.get(column.key)
            if display is None:
                entries.append((column.label, column.key))
            elif all(header != display.label for header, _ in entries):
                entries.append((display.label, display))
        return entries

    def table_markdown(self, table: PublishedTable) -> str:
        slots = table_slots(table)
        by_row: dict[int, list[Slot]] = {}
        for slot in slots:
            by_row.setdefault(slot.row_index, []).append(slot)
        layout = self.layout(table)
        printed = table.printed_rows()
        header = ["Method", *(h for h, _ in layout)]
        lines: list[list[str]] = []
        shown: set[tuple] = set()
        for index, row in enumerate(table.rows):
            lines.append([printed[index][""], *(printed[index][h] for h, _ in layout)])
            row_slots = by_row.get(index, [])
            identity = tuple(sorted((s.key, s.protocol) for s in row_slots))
            if not row_slots or identity in shown:
                continue
            shown.add(identity)
            lines += self.measured_rows(table, row, row_slots, layout)
        parts = [f"## {heading(table)}: {table.title}", ""]
        page = f"page {table.page}" if table.page is not None else "page not known"
        parts += [
            f"Source: {table.location} ({page}). Reproduce: `bench run --table {table.id}`.",
            "",
        ]
        parts += [md_table(header, lines), ""]
        if table.notes:
            parts += ["Notes from the published data:", ""]
            parts += [f"- {note}" for note in table.notes] + [""]
        return "\n".join(parts)

    def measured_rows(
        self, table: PublishedTable, row: Row, slots: list[Slot], layout: list
    ) -> list[list[str]]:
        """Per profile measured: the row's measured values, and its differences from the
        paper when any value is measured."""
        profiles = sorted(
            {r.profile or "unknown" for s in slots for r in self.matching(s)},
            key=lambda p: (p != PROFILE, p),
        ) or [PROFILE]
        lines = []
        for profile in profiles:
            filled = _Filled()
            for slot in slots:
                self.fill_slot(table, row, slot, profile, filled)
            filled.texts.update(filled.steps)
            label = f"{row.label}: bench ({profile})"
            lines.append([label, *(self.compose(entry, filled.texts) for _, entry in layout)])
            if any(v is not None for v in filled.means.values()):
                deltas = [self.delta(table, row, entry, filled.means, filled.intervals) for _, entry in layout]  # fmt: skip
                lines.append([f"{row.label}: Δ bench − paper", *deltas])
        return lines

    def fill_slot(
        self, table: PublishedTable, row: Row, slot: Slot, profile: str, filled: _Filled
    ) -> None:
        """One slot's columns: the measured text and mean (or why there is none), the
        interval where the runs logged one, and the steps they sampled with."""
        groups = self.groups(slot, profile)
        runs = groups[0] if groups else []
        for key in slot.columns:
            column = table.column(key)
            metric = metric_key(table.context(row, column))
            if not runs or metric is None:
                filled.texts[key] = self.not_run(slot, profile) if not runs else ""
                filled.means[key] = None
                continue
            filled.texts[key], filled.means[key] = self.measured(
                slot, runs, len(groups) - 1, metric, column.decimals or 0,
                significant=column.kind == "resource",
            )  # fmt: skip
            found = measured_interval(runs, metric)
            if found is not None:
                filled.intervals[key] = found
        for column in table.columns:
            if column.kind == "setting" and column.key == "steps":
                filled.steps[column.key] = str(runs[0].steps) if runs else str(slot.steps or "")

    @staticmethod
    def compose(entry: str | Display, texts: Mapping[str, str]) -> str:
        if isinstance(entry, str):
            return texts.get(entry, "")
        parts = {name: texts.get(name, "") for name in entry.fields}
        if all(not text for text in parts.values()):
            return ""
        return entry.template.format(**parts)

    def delta(
        self,
        table: PublishedTable,
        row: Row,
        entry: str | Display,
        means: Mapping[str, float | None],
        intervals: Mapping[str, tuple[float, float]],
    ) -> str:
        def one(key: str) -> str:
            column = table.column(key)
            published = row.values[key].value
            mean = means.get(key)
            if column.kind != "metric" or mean is None or published is None:
                return ""
            text = f"{mean - float(published):+.{column.decimals}f}"
            if key in intervals:
                text += " " + self.verdict(float(published), intervals[key], column.decimals)
            return text

        if isinstance(entry, str):
            return one(entry)
        parts = {name: one(name) for name in entry.fields}
        return entry.template.format(**parts) if all(parts.values()) else ""

    def verdict(self, published: float, interval: tuple[float, float], decimals: int) -> str:
        """Whether ``published`` lies in the measured value's interval, and how far outside."""
        low, high = interval
        note = self.notes(VERDICT_NOTE)
        if low <= published <= high:
            return f"(consistent{note})"
        side, gap = ("above", low - published) if published < low else ("below", published - high)
        return (
            f"(measured {side}: the paper's value is {gap:.{decimals}f} outside "
            f"[{low:.{decimals}f}, {high:.{decimals}f}]{note})"
        )

    # --- the document ---------------------------------------------------------------------

    def shown_tables(self) -> list[PublishedTable]:
        """The tables printed in full: those with a measured cell (every one with
        ``all_tables``); the others are listed with the command that fills them."""
        return [t for t in self.tables if self.all_tables or self.completeness(t).filled_any]

    def markdown(
        self,
        plots: Mapping[str, str] | None = None,
        grids: Mapping[Group, str] | None = None,
        docs: tuple[Path, str] | None = None,
    ) -> str:
        """The report. ``plots``: file -> title; ``grids``: the sample grid of each (dataset,
        profile); ``docs``: the docs folder and its address from the report, which turn
        references such as docs/protocols.md §2.1 into links."""
        parts = self.heading()
        parts += summary_markdown(self.store, self.link, md_table, grids or {})
        # a summarised run needs no other place, unless it lacks fields a table matches on
        summarised = [r for runs in summary_groups(self.store).values() for r in runs]
        self.placed |= {r.run_id for r in summarised if not missing_fields(r)}
        parts += self.paper_tables()
        parts += measured_markdown(self.store, self.link, md_table)
        parts += audit_markdown(self.store, self.link)
        if plots:
            parts += ["## Plots", ""]
            parts += [f"![{title}]({path})\n" for path, title in sorted(plots.items())]
        parts += self.leftovers()
        if self.notes.texts:
            parts += ["## Footnotes", "", self.notes.markdown(), ""]
        text = "\n".join(parts).rstrip() + "\n"
        return link_doc_references(text, *docs) if docs else text

    def heading(self) -> list[str]:
        """The title and the store: how many runs, by status."""
        status = sorted({r.status for r in self.store.runs})
        counts = ", ".join(
            f"{sum(r.status == s for r in self.store.runs)} {s.lower()}" for s in status
        )
        served = self.store.uri.startswith("http")
        parts = [
            f"# bench report: experiment `{self.store.experiment}`",
            "",
            f"Tracking store `{self.store.uri}`: {len(self.store.runs)} run(s)"
            + (f" ({counts})" if counts else "")
            + f"; {len(self.cells)} cell run(s). Run links open the MLflow UI"
            + ("." if served else " (start it with `bench ui`)."),
            "",
        ]
        if not self.store.runs:
            parts += ["**No runs in this experiment yet**: every measured cell is a dash.", ""]
        return parts

    def paper_tables(self) -> list[str]:
        shown = self.shown_tables()
        parts = [
            "## Paper tables",
            "",
            'How to read: published rows are copied as printed. A row "bench (profile)" holds '
            "the mean over seeds of bench's finished runs with the table's method, dataset, "
            "sampling steps and method options (± sample standard deviation and n when there "
            "are several seeds); its footnote names the protocol, settings, hardware and links "
            'every run. "Δ bench − paper" is measured minus published, with a reproduction '
            "verdict where the run logged an interval (consistent, measured above, or measured "
            "below, and by how much; its footnote says what it assumes). A dash with a footnote "
            'was not run; the footnote is the command that fills it. "unavailable" is a '
            "metric that could not be computed, with the reason in its footnote. ISTD MAE is "
            "the per-image mean (PI) with the per-pixel value (PP) in the footnote: which one "
            "RDDM printed is open (docs/protocols.md §2.1).",
            "",
        ]
        parts += self.contents(shown)
        if len(shown) < len(self.tables):
            parts += [
                f"{len(self.tables) - len(shown)} of {len(self.tables)} tables have no measured "
                "cell and are only listed; `bench report --all-tables` prints them all, with "
                "the command that fills each cell.",
                "",
            ]
        for table in shown:
            parts.append(self.table_markdown(table))
            if table.id == "rddm-table-11c":
                parts.append(table11_markdown(self.tables, self.finished, self.link, md_table))
                measured, placed = resources_markdown(self.tables, self.finished, self.link)
                self.placed |= placed
                parts.append(measured)
        return parts

    def contents(self, shown: list[PublishedTable]) -> list[str]:
        rows = []
        for table in self.tables:
            done = self.completeness(table)
            title = f"{heading(table)}: {table.title}"
            rows.append(
                [
                    f"[{done.title}](#{slug(title)})" if table in shown else done.title,
                    f"{done.filled_paper}/{done.slots}",
                    f"{done.filled_any}/{done.slots}",
                    f"`bench run --table {table.id}`",
                ]
            )
        header = ["Table", "Filled (paper profile)", "Filled (any profile)", "Reproduce"]
        return [md_table(header, rows), ""]

    def leftovers(self) -> list[str]:
        """The finished runs no table could place, and the runs that did not finish."""
        return self.loose_runs() + self.unfinished_runs()

    def loose_runs(self) -> list[str]:
        loose = [r for r in self.finished if r.run_id not in self.placed]
        if not loose:
            return []
        rows = [
            [
                f"[{r.run_id[:8]}]({self.link(r)})", r.method or "?", r.dataset or "?",
                r.profile or "?", str(r.steps or "?"), missing_fields(r) or "",
            ]
            for r in by_seed(loose)
        ]  # fmt: skip
        return [
            "## Runs in no table",
            "",
            "Finished cell runs that lack settings the current harness records (an older harness), so no table can match them.",
            "",
            md_table(["Run", "Method", "Dataset", "Profile", "Steps", "Missing fields"], rows),
            "",
        ]

    def unfinished_runs(self) -> list[str]:
        failed = [r for r in self.store.runs if r.kind != "grid" and not r.finished]
        if not failed:
            return []
        rows = [
            [
                f"[{r.run_id[:8]}]({self.link(r)})", r.method or "?", r.dataset or "?",
                r.status, first_line(r.tags.get("error") or "")[:200],
            ]
            for r in by_seed(failed)
        ]  # fmt: skip
        return [
            "## Runs that did not finish",
            "",
            "Not counted anywhere above: only FINISHED runs are measurements.",
            "",
            md_table(["Run", "Method", "Dataset", "Status", "Error"], rows),
            "",
        ]


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def settings_note(first: TrackedRun, slot: Slot) -> list[str]:
    """What a group of runs was measured under: protocol, dataset, method, sampling steps,
    options, profile and hardware."""
    options = ", ".join(f"{k}={v}" for k, v in sorted(first.options.items())) or "none"
    return [
        f"Protocol `{first.protocol or slot.protocol}` on dataset `{first.dataset}`",
        f"method `{first.method}`, {first.steps or '?'} sampling steps, options {options}",
        f"profile `{first.profile or 'unknown'}`: {first.iterations or '?'} iterations at "
        f"{first.image_size or '?'} px, UNet dim {first.unet_dim or '?'}",
        f"hardware {first.hardware}",
    ]


#: what a cell run of the current harness records; a run lacking one is from an older one
EXPECTED_FIELDS: tuple[tuple[str, Callable[[TrackedRun], Any]], ...] = (
    ("method", lambda r: r.method),
    ("dataset", lambda r: r.dataset),
    ("profile", lambda r: r.profile),
    ("cell.steps", lambda r: r.steps),
    ("cell.iterations", lambda r: r.iterations),
    ("cell.image_size", lambda r: r.image_size),
)


def missing_fields(run: TrackedRun) -> str:
    return ", ".join(name for name, get in EXPECTED_FIELDS if get(run) is None)
