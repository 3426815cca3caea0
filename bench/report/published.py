"""The papers' published tables, loaded from ``reports/published/*.toml``.

Every file is one printed table. Cells are stored as the printed text ("0.9170", "25.392",
"–") because a TOML float would drop trailing zeros; the loader derives the number and its
printed precision from that text, so :func:`format_value` reproduces the paper exactly and
prints our own results at the paper's precision.

File schema (every key is checked; unknown keys are refused so typos cannot hide):

    id, paper, table, title, source, location, page ("unknown" or an int)
    dataset, protocol, settings{}, notes[]            table defaults, all optional
    [[columns]] key, label, kind (metric | resource | setting), type (number | text),
                metric, direction (lower | higher), unit, decimals, dataset, protocol,
                settings{}, note
    [[rows]]    label, method, variant, source, settings{}, protocol, values{column: "printed"},
                marks{column: "†"}, paper_text{column: "garbled"}, unrounded{column: float},
                unrounded_source, conflicts[{column, printed, source, note}], note
    [[displays]] label, template ("{macs_per_step_g}×{steps} = {macs_g}")
    [[products]] per_step, steps, total               Table 11's "a×n = b" cells
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bench
from bench import typed_toml
from bench.conventions import protocol_names
from bench.errors import BenchError, choices

ABSENT = "–"  # the tables' en dash: the paper gives no value (never 0)

#: the paper protocols and their registered variants (bench/conventions.py): a table that
#: scores at another resolution or colour space names the variant that does
PROTOCOLS = protocol_names()
#: a metric column that no bench protocol reproduces (e.g. a checkpoint's validation PSNR)
NO_PROTOCOL = "none"
#: where a number comes from, and what that makes it
SOURCE_STATUS = {
    "paper": "published",
    "talk": "published",
    "third-party": "unverified",
    "official-code": "official",
    "recomputed": "recomputed",
}
#: "secondary": not a table of the paper; numbers gathered from other sources
TABLE_SOURCES = ("paper", "talk", "mixed", "secondary")

_NUMBER = re.compile(r"\d+(\.\d+)?")

Direction = Literal["lower", "higher"]


def published_dir() -> Path:
    """``reports/published`` in a source tree, else the copy a wheel installs as ``bench._published``."""
    package = Path(bench.__file__).resolve().parent
    source_tree = package.parent / "reports" / "published"
    return source_tree if source_tree.is_dir() else package / "_published"


def format_value(value: float | None, decimals: int) -> str:
    """``value`` printed with ``decimals`` digits after the point; ``None`` (absent) as "–"."""
    return ABSENT if value is None else f"{value:.{decimals}f}"


@dataclass(frozen=True)
class PrintedValue:
    """One cell as printed: ``text`` without marks, the number (``None`` when absent)."""

    text: str
    value: int | float | str | None
    decimals: int | None

    @property
    def absent(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class Column:
    """A ``[[columns]]`` entry, read as it is written (bench.typed_toml)."""

    key: str
    label: str
    unit: str
    kind: Literal["metric", "resource", "setting"] = "metric"
    type: Literal["number", "text"] = "number"
    metric: str | None = None
    direction: Direction | None = None
    decimals: int | None = None
    dataset: str | None = None
    protocol: str | None = field(
        default=None, metadata=typed_toml.choices((*PROTOCOLS, NO_PROTOCOL))
    )
    settings: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Conflict:
    """Another source prints a different value for the same cell."""

    column: str
    printed: str
    source: str = field(metadata=typed_toml.choices(SOURCE_STATUS))
    note: str


@dataclass(frozen=True)
class _RowFile:
    """A ``[[rows]]`` entry as written: cells as printed text, checked against the columns."""

    label: str
    method: str
    values: Mapping[str, Any]  # column key -> the printed text (checked per column type)
    variant: str | None = None
    source: str = field(default="paper", metadata=typed_toml.choices(SOURCE_STATUS))
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: a row scored under another protocol than its columns' (a table printing one setting
    #: per block of rows, e.g. 256x256 and the original resolution)
    protocol: str | None = field(default=None, metadata=typed_toml.choices(PROTOCOLS))
    marks: Mapping[str, str] = field(default_factory=dict)
    paper_text: Mapping[str, str] = field(default_factory=dict)
    unrounded: Mapping[str, float] = field(default_factory=dict)
    unrounded_source: str = ""
    conflicts: tuple[Conflict, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Row(_RowFile):
    """A row with its cells parsed: ``values`` maps column key -> :class:`PrintedValue`."""

    values: Mapping[str, PrintedValue]

    @property
    def status(self) -> str:
        """ "published" (paper or talk), "unverified", "official" or "recomputed"."""
        return SOURCE_STATUS[self.source]


@dataclass(frozen=True)
class Display:
    """A printed column built from several stored ones, e.g. "30.72/0.959"."""

    label: str
    template: str

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.template) if name)


@dataclass(frozen=True)
class Product:
    """A "per-step × steps = total" cell (Table 11)."""

    per_step: str
    steps: str
    total: str


@dataclass(frozen=True)
class PublishedCell:
    """One value with everything a runner needs to match it to a result of its own."""

    table_id: str
    row: Row
    column: Column
    dataset: str | None
    protocol: str | None
    settings: Mapping[str, Any]
    value: PrintedValue

    @property
    def metric(self) -> str | None:
        return self.column.metric


@dataclass(frozen=True)
class PublishedTable:
    id: str
    path: Path
    paper: str
    table: str
    title: str
    source: str
    location: str
    page: int | None
    dataset: str | None
    protocol: str | None
    settings: Mapping[str, Any]
    notes: tuple[str, ...]
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    displays: tuple[Display, ...] = ()
    products: tuple[Product, ...] = ()
    _columns: dict[str, Column] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._columns.update({column.key: column for column in self.columns})

    def column(self, key: str) -> Column:
        try:
            return self._columns[key]
        except KeyError:
            raise BenchError(
                f"table {self.id} has no column '{key}'; columns: {choices(self._columns)}"
            ) from None

    def row(self, label: str, variant: str | None = None) -> Row:
        """The row printed as ``label`` (and ``variant`` where two rows share a label)."""
        found = [
            row
            for row in self.rows
            if row.label == label and (variant is None or row.variant == variant)
        ]
        if len(found) == 1:
            return found[0]
        raise BenchError(
            f"table {self.id}: {len(found)} rows match '{label}' (variant {variant}); rows: "
            f"{choices({r.label for r in self.rows})}"
        )

    def format(self, key: str, value: float | None) -> str:
        """Our own ``value`` printed at the paper's precision for column ``key``."""
        column = self.column(key)
        if column.decimals is None:
            raise BenchError(f"table {self.id} column '{key}' is text, not a number")
        return format_value(value, column.decimals)

    def printed(self, row: Row, key: str, marks: bool = True) -> str:
        """The cell as the table prints it, marks (†, *) included unless ``marks=False``."""
        text = row.values[key].text
        return text + row.marks.get(key, "") if marks else text

    def printed_rows(self) -> list[dict[str, str]]:
        """Each row as printed: label -> text, with displays standing in for their parts."""
        shown_in = {name: d for d in self.displays for name in d.fields}
        result = []
        for row in self.rows:
            cells = {"": row.label}
            for column in self.columns:
                display = shown_in.get(column.key)
                if display is None:
                    cells[column.label] = self.printed(row, column.key)
                elif display.label not in cells:
                    parts = {name: self.printed(row, name) for name in display.fields}
                    empty = all(row.values[name].absent for name in display.fields)
                    cells[display.label] = ABSENT if empty else display.template.format(**parts)
            result.append(cells)
        return result

    def context(self, row: Row, column: Column) -> PublishedCell:
        """One cell, present or absent, with its merged context (table < column < row)."""
        settings = {**self.settings, **column.settings}
        settings.update(
            (c.key, row.values[c.key].value)
            for c in self.columns
            if c.kind == "setting" and not row.values[c.key].absent
        )
        settings.update(row.settings)
        return PublishedCell(
            table_id=self.id,
            row=row,
            column=column,
            dataset=column.dataset or self.dataset,
            protocol=row.protocol or column.protocol or self.protocol,
            settings=settings,
            value=row.values[column.key],
        )

    def cells(self) -> Iterator[PublishedCell]:
        """Every present value with its merged context (table < column < row settings)."""
        for row in self.rows:
            for column in self.columns:
                if not row.values[column.key].absent and column.kind != "setting":
                    yield self.context(row, column)


def load_published(folder: Path | None = None) -> dict[str, PublishedTable]:
    """Every table under ``folder`` (default :func:`published_dir`), keyed by its id."""
    folder = published_dir() if folder is None else folder
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise BenchError(
            f"no published tables (*.toml) in {folder}; reinstall bench or restore "
            "reports/published/"
        )
    return {table.id: table for table in map(load_table, paths)}


def load_table(path: Path) -> PublishedTable:
    """One table file, validated; a problem raises BenchError naming the file and key."""
    raw = typed_toml.build(
        _TableFile, typed_toml.read_toml(path, BenchError), path, error=BenchError
    )
    return _TableChecks(path).table(raw)


# ---------------------------------------------------------------------------------------
# validation


def parse_printed(text: str, where: str, kind: str = "number") -> PrintedValue:
    """A printed cell: "–" (absent), a plain decimal number, or (text columns) any text."""
    if text == ABSENT:
        return PrintedValue(text, None, None)
    if kind == "text":
        return PrintedValue(text, text, None)
    if not _NUMBER.fullmatch(text):
        raise ValueError(
            f"{where} = '{text}' is not a printed number; write it as printed, e.g. "
            f'"0.9170", or "{ABSENT}" for an empty cell'
        )
    if "." not in text:
        return PrintedValue(text, int(text), 0)
    return PrintedValue(text, float(text), len(text.split(".")[1]))


def _identity(row: Row) -> tuple:
    settings = tuple(sorted(row.settings.items()))
    return (row.label, row.method, row.variant, row.source, row.protocol, settings)


@dataclass(frozen=True)
class _TableFile:
    """A published-table file as written (the module docstring lists its keys)."""

    id: str
    paper: str
    table: str
    title: str
    source: str = field(metadata=typed_toml.choices(TABLE_SOURCES))
    location: str
    page: int | Literal["unknown"]
    columns: tuple[Column, ...]
    rows: tuple[_RowFile, ...]
    dataset: str | None = None
    protocol: str | None = field(
        default=None, metadata=typed_toml.choices((*PROTOCOLS, NO_PROTOCOL))
    )
    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    displays: tuple[Display, ...] = ()
    products: tuple[Product, ...] = ()


class _TableChecks:
    """What the file's shape cannot say: keys that must name columns, cells that must parse,
    rules between keys. Every problem is ``BenchError("<file>: <key> ...")``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> BenchError:
        return typed_toml.fail(BenchError, self.path, f"{where}:", problem)

    def only_columns(self, keys: Iterable[str], columns: Iterable[str], where: str) -> None:
        extra = sorted(set(keys) - set(columns))
        if extra:
            raise self.fail(f"{where}.{extra[0]}", f"not a column; columns: {', '.join(columns)}")

    def printed(self, text: Any, where: str, kind: str) -> PrintedValue:
        if not isinstance(text, str):
            raise self.fail(where, f'write the printed text as a string, e.g. "{text}"')
        try:
            return parse_printed(text, where, kind)
        except ValueError as error:
            raise BenchError(f"{self.path}: {error}") from None

    def table(self, raw: _TableFile) -> PublishedTable:
        if raw.id != self.path.stem:
            raise self.fail("id", f"'{raw.id}' must equal the file name '{self.path.stem}'")
        for i, column in enumerate(raw.columns):
            self.column(column, f"columns[{i}]", raw.protocol)
        keys = [c.key for c in raw.columns]
        if len(set(keys)) != len(keys):
            raise self.fail("columns", "column keys must be unique")
        rows = tuple(self.row(r, f"rows[{i}]", raw.columns) for i, r in enumerate(raw.rows))
        self.unique_rows(rows)
        self.derived_columns(raw, keys)
        return PublishedTable(
            **{**vars(raw), "rows": rows, "page": None if raw.page == "unknown" else raw.page},
            path=self.path,
        )

    def unique_rows(self, rows: tuple[Row, ...]) -> None:
        identities = [_identity(r) for r in rows]
        for i, identity in enumerate(identities):
            if identity in identities[:i]:
                raise self.fail(
                    f"rows[{i}]", "repeats an earlier row's label, method, variant and settings"
                )

    def derived_columns(self, raw: _TableFile, keys: list[str]) -> None:
        """Displays and products name only the table's columns."""
        for i, display in enumerate(raw.displays):
            unknown = [name for name in display.fields if name not in keys]
            if unknown or not display.fields:
                raise self.fail(f"displays[{i}].template", f"must name columns; unknown: {unknown}")
        for i, product in enumerate(raw.products):
            self.only_columns(vars(product).values(), keys, f"products[{i}]")

    def column(self, column: Column, where: str, table_protocol: str | None) -> None:
        kind = column.kind
        protocol = column.protocol or table_protocol
        if kind != "setting" and column.direction is None:
            raise self.fail(f"{where}.direction", f"missing: a {kind} column needs lower or higher")
        if kind == "metric" and column.metric is None:
            raise self.fail(f"{where}.metric", "missing: a metric column names its metric")
        if kind == "metric" and protocol is None:
            raise self.fail(f"{where}.protocol", "missing here and at the table level")
        if protocol == NO_PROTOCOL and kind == "metric" and not column.note:
            raise self.fail(f"{where}.note", "missing: say how a protocol-less value was made")
        if (column.type == "number") != (column.decimals is not None):
            raise self.fail(f"{where}.decimals", "required for number columns, refused for text")

    def row(self, raw: _RowFile, where: str, columns: tuple[Column, ...]) -> Row:
        types = {c.key: c.type for c in columns}
        missing = [key for key in types if key not in raw.values]
        if missing:
            raise self.fail(
                f"{where}.values.{missing[0]}", f'missing; write "{ABSENT}" for an empty cell'
            )
        self.only_columns(raw.values, types, f"{where}.values")
        values = {
            key: self.printed(text, f"{where}.values.{key}", types[key])
            for key, text in raw.values.items()
        }
        clash = sorted(set(raw.settings) & set(types))
        if clash:
            raise self.fail(f"{where}.settings.{clash[0]}", "also a column key; rename one")
        for name in ("marks", "paper_text", "unrounded"):
            self.only_columns(getattr(raw, name), types, f"{where}.{name}")
        if raw.unrounded and not raw.unrounded_source:
            raise self.fail(f"{where}.unrounded_source", "missing: say where the figures come from")
        for i, conflict in enumerate(raw.conflicts):
            key = f"{where}.conflicts[{i}]"
            self.only_columns([conflict.column], types, key + ".column")
            self.printed(conflict.printed, f"{key}.printed", types[conflict.column])
        return Row(**{**vars(raw), "values": values})
