"""The protocol audit's rows: headline values per convention and their moves (no torch, so
`bench report` builds the same table from the values a run logged).

One set of outputs scored under the paper's protocol and under every convention of its task
(bench/conventions.py) gives one :class:`AuditRow` per convention: the headline metrics and
how far each moved from the paper script's value (docs/protocols.md, "The protocol audit").
A run logs them as ``audit/<protocol>/<metric>``; ``rows_from_metrics`` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.conventions import HEADLINES, Convention, MetricKey, conventions_for

REFERENCE = "the paper's script"


@dataclass(frozen=True)
class AuditRow:
    protocol: str  # the reference's or the convention's name ("istd", "istd-origin")
    pick: str  # the --protocol that scores this row (the base for a row that reads values)
    change: str
    used_by: str
    values: dict[str, float | None]  # headline title -> value (None: unavailable)
    deltas: dict[str, float | None]  # headline title -> value minus the reference's

    @property
    def scored_by(self) -> str:
        """The --protocol that gives this row and, for a convention that reads other values
        of it, which (``istd (mae_all_pp, mae_s_pp)``): not the headline's own."""
        reads = next((c.reads for c in conventions_for(self.pick) if c.name == self.protocol), {})
        return f"{self.pick} ({', '.join(reads.values())})" if reads else self.pick

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "pick": self.pick,
            "change": self.change,
            "used_by": self.used_by,
            "values": self.values,
            "deltas": self.deltas,
        }


def auditable(base: str) -> bool:
    return base in HEADLINES


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def audit_rows(
    base: str,
    summaries: Mapping[str, Mapping[str, float]],
    reference_used_by: str = "",
) -> list[AuditRow]:
    """The rows of ``base``'s audit from summaries keyed by protocol name: the paper's
    (key ``base``) and each convention's (key: its name). A convention that only reads other
    values of the paper's result reads them from ``summaries[base]`` when it has no summary
    of its own. A convention without a summary is left out."""
    headlines = {spec.title: spec.key for spec in HEADLINES[base]}
    reference = {t: _finite(summaries[base].get(k)) for t, k in headlines.items()}
    zero = dict.fromkeys(reference, 0.0)
    rows = [AuditRow(base, base, REFERENCE, reference_used_by, reference, zero)]
    for convention in conventions_for(base):
        source = _convention_values(base, convention, summaries)
        if source is None:
            continue
        reads = headlines | convention.reads
        values = {t: _finite(source.get(reads[t])) for t in headlines}
        deltas = {
            t: None if values[t] is None or reference[t] is None else values[t] - reference[t]
            for t in values
        }
        pick = convention.name if convention.is_protocol else base
        rows.append(
            AuditRow(convention.name, pick, convention.label, convention.used_by, values, deltas)
        )
    return rows


def _convention_values(
    base: str, convention: Convention, summaries: Mapping[str, Mapping[str, float]]
) -> Mapping[str, float] | None:
    """What a convention scored, completed by the paper's values for what it leaves alone;
    a convention that only reads the paper's result reads it there. None: not scored."""
    source = summaries.get(convention.name)
    if source is None and not convention.is_protocol:
        return summaries[base]
    if source is None or not convention.recomputes:
        return source
    # scored for what it can change; the rest is the paper's
    unchanged = {
        spec.key: summaries[base][spec.key]
        for spec in HEADLINES[base]
        if spec.group not in convention.recomputes and spec.key in summaries[base]
    }
    return {**unchanged, **source}


def _slug(title: str) -> str:
    return title.lower().replace(" ", "_")


def to_metrics(rows: list[AuditRow]) -> dict[str, float]:
    """``audit/<protocol>/<metric>`` for every available value (what a run logs)."""
    return {
        str(_key(row.protocol, title)): value
        for row in rows
        for title, value in row.values.items()
        if value is not None
    }


def _key(protocol: str, title: str) -> MetricKey:
    return MetricKey(protocol, _slug(title), "audit")


def rows_from_metrics(base: str, metrics: Mapping[str, float]) -> list[AuditRow]:
    """The rows a run logged with :func:`to_metrics`; [] when it logged no audit."""
    if not auditable(base):
        return []
    headlines = {spec.title: spec.key for spec in HEADLINES[base]}
    if not any(str(_key(base, title)) in metrics for title in headlines):
        return []
    summaries: dict[str, dict[str, float]] = {}
    for convention in (None, *conventions_for(base)):
        name = convention.name if convention else base
        reads = headlines | (convention.reads if convention else {})
        logged = {
            reads[title]: metrics[str(_key(name, title))]
            for title in reads
            if str(_key(name, title)) in metrics
        }
        if logged:
            summaries[name] = logged
    return audit_rows(base, summaries)


def format_value(value: float | None, delta: float | None, first: bool) -> str:
    """A value with its move from the reference row: '30.12 (+0.35)', '(=)' or 'n/a'."""
    if value is None:
        return "n/a"
    digits = 2 if abs(value) >= 10 else 4
    if first or delta is None:
        return f"{value:.{digits}f}"
    if abs(delta) < 0.5 * 10**-digits:
        return f"{value:.{digits}f} (=)"
    return f"{value:.{digits}f} ({delta:+.{digits}f})"


@dataclass(frozen=True)
class Yardstick:
    """An interval the audit's moves are measured against, in the unit of the headline
    ``title``: the 95% interval of the method's gap to the input (a run), or of the value
    itself over images (a folder). The audit's claim, that conventions move a number more
    than methods differ, is then a ratio per row (docs/statistics.md)."""

    title: str
    label: str  # what the interval is, with its endpoints
    half_width: float

    @property
    def header(self) -> str:
        return f"{self.title} move ÷ interval half-width"

    def ratio(self, row: AuditRow, first: bool) -> str:
        delta = row.deltas.get(self.title)
        if first or delta is None or self.half_width <= 0:
            return "–"
        return f"{abs(delta) / self.half_width:.2f}×"


def markdown(rows: list[AuditRow], yardstick: Yardstick | None = None) -> str:
    """The audit as a Markdown table: each value with its move from the first row, and with a
    ``yardstick`` the first headline's move in units of its half-width."""
    titles = list(rows[0].values)
    extra = [yardstick.header] if yardstick else []
    lines = [
        "| Convention | Protocol | Used by | " + " | ".join(titles + extra) + " |",
        "|---|---|---|" + "---|" * (len(titles) + len(extra)),
    ]
    for index, row in enumerate(rows):
        cells = [format_value(row.values[t], row.deltas[t], index == 0) for t in titles]
        if yardstick:
            cells.append(yardstick.ratio(row, index == 0))
        lines.append(
            f"| {row.change} | `{row.scored_by}` | {row.used_by} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)
