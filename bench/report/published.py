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
    [[rows]]    label, method, variant, source, settings{}, values{column: "printed"},
                marks{column: "†"}, paper_text{column: "garbled"}, unrounded{column: float},
                unrounded_source, conflicts[{column, printed, source, note}], note
    [[displays]] label, template ("{macs_per_step_g}×{steps} = {macs_g}")
    [[products]] per_step, steps, total               Table 11's "a×n = b" cells
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bench
from bench.conventions import BASE_PROTOCOLS
from bench.errors import BenchError, choices

ABSENT = "–"  # the tables' en dash: the paper gives no value (never 0)

PROTOCOLS = BASE_PROTOCOLS  # the paper protocols (bench/conventions.py)
#: a metric column that no bench protocol reproduces (e.g. a checkpoint's validation PSNR)
NO_PROTOCOL = "none"
KINDS = ("metric", "resource", "setting")
TYPES = ("number", "text")
DIRECTIONS = ("lower", "higher")
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
    key: str
    label: str
    kind: str
    type: str
    metric: str | None
    direction: Direction | None
    unit: str
    decimals: int | None
    dataset: str | None
    protocol: str | None
    settings: Mapping[str, Any]
    note: str


@dataclass(frozen=True)
class Conflict:
    """Another source prints a different value for the same cell."""

    column: str
    printed: str
    source: str
    note: str


@dataclass(frozen=True)
class Row:
    label: str
    method: str
    variant: str | None
    source: str
    settings: Mapping[str, Any]
    values: Mapping[str, PrintedValue]
    marks: Mapping[str, str]
    paper_text: Mapping[str, str]
    unrounded: Mapping[str, float]
    unrounded_source: str
    conflicts: tuple[Conflict, ...]
    note: str

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
            protocol=column.protocol or self.protocol,
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
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise BenchError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise BenchError(f"{path}: cannot be read ({error.strerror})") from None
    return _TableReader(path).table(data)


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
    return (row.label, row.method, row.variant, row.source, tuple(sorted(row.settings.items())))


class _TableReader:
    """Reads one file's dict, turning every problem into ``BenchError("<file>: <key>: ...")``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> BenchError:
        return BenchError(f"{self.path}: {where}: {problem}")

    def take(
        self, data: Mapping[str, Any], where: str, key: str, kind: type | tuple, default: Any = ...
    ) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in data:
            if default is ...:
                raise self.fail(name, "missing")
            return default
        value = data[key]
        # bool is an int in Python; a true/false where a number belongs is a mistake.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            expected = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(name, f"expected {expected}, got {type(value).__name__} {value!r}")
        return value

    def one_of(self, value: str | None, valid: Iterable[str], where: str) -> None:
        valid = tuple(valid)
        if value is not None and value not in valid:
            raise self.fail(where, f"'{value}' is not one of {', '.join(valid)}")

    def no_extra(self, data: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
        extra = sorted(set(data) - set(allowed))
        if extra:
            raise self.fail(
                f"{where}.{extra[0]}" if where else extra[0],
                f"unknown key; valid keys: {', '.join(sorted(allowed))}",
            )

    def table(self, data: dict[str, Any]) -> PublishedTable:
        take = self.take
        self.no_extra(data, _TABLE_KEYS, "")
        table_id = take(data, "", "id", str)
        if table_id != self.path.stem:
            raise self.fail("id", f"'{table_id}' must equal the file name '{self.path.stem}'")
        source = take(data, "", "source", str)
        self.one_of(source, TABLE_SOURCES, "source")
        page = take(data, "", "page", (int, str))
        if isinstance(page, str) and page != "unknown":
            raise self.fail("page", f"'{page}' must be a page number or \"unknown\"")
        protocol = take(data, "", "protocol", str, None)
        self.one_of(protocol, (*PROTOCOLS, NO_PROTOCOL), "protocol")
        columns = tuple(
            self.column(c, f"columns[{i}]", protocol)
            for i, c in enumerate(take(data, "", "columns", list))
        )
        keys = [c.key for c in columns]
        if len(set(keys)) != len(keys):
            raise self.fail("columns", "column keys must be unique")
        rows = tuple(
            self.row(r, f"rows[{i}]", columns) for i, r in enumerate(take(data, "", "rows", list))
        )
        identities = [_identity(r) for r in rows]
        for i, identity in enumerate(identities):
            if identity in identities[:i]:
                raise self.fail(
                    f"rows[{i}]", "repeats an earlier row's label, method, variant and settings"
                )
        displays = tuple(
            self.display(d, f"displays[{i}]", keys)
            for i, d in enumerate(take(data, "", "displays", list, []))
        )
        products = tuple(
            self.product(p, f"products[{i}]", keys)
            for i, p in enumerate(take(data, "", "products", list, []))
        )
        return PublishedTable(
            id=table_id,
            path=self.path,
            paper=take(data, "", "paper", str),
            table=take(data, "", "table", str),
            title=take(data, "", "title", str),
            source=source,
            location=take(data, "", "location", str),
            page=None if page == "unknown" else page,
            dataset=take(data, "", "dataset", str, None),
            protocol=protocol,
            settings=take(data, "", "settings", dict, {}),
            notes=tuple(self.strings(take(data, "", "notes", list, []), "notes")),
            columns=columns,
            rows=rows,
            displays=displays,
            products=products,
        )

    def strings(self, values: list, where: str) -> list[str]:
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise self.fail(f"{where}[{i}]", f"expected str, got {value!r}")
        return values

    def column(self, data: Any, where: str, table_protocol: str | None) -> Column:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table ([[columns]])")
        take = self.take
        self.no_extra(data, _COLUMN_KEYS, where)
        kind = take(data, where, "kind", str, "metric")
        self.one_of(kind, KINDS, f"{where}.kind")
        value_type = take(data, where, "type", str, "number")
        self.one_of(value_type, TYPES, f"{where}.type")
        direction = take(data, where, "direction", str, None)
        self.one_of(direction, DIRECTIONS, f"{where}.direction")
        protocol = take(data, where, "protocol", str, None)
        self.one_of(protocol, (*PROTOCOLS, NO_PROTOCOL), f"{where}.protocol")
        decimals = take(data, where, "decimals", int, None)
        metric = take(data, where, "metric", str, None)
        note = take(data, where, "note", str, "")
        if kind != "setting" and direction is None:
            raise self.fail(f"{where}.direction", f"missing: a {kind} column needs lower or higher")
        if kind == "metric" and metric is None:
            raise self.fail(f"{where}.metric", "missing: a metric column names its metric")
        if kind == "metric" and (protocol or table_protocol) is None:
            raise self.fail(f"{where}.protocol", "missing here and at the table level")
        if (protocol or table_protocol) == NO_PROTOCOL and kind == "metric" and not note:
            raise self.fail(f"{where}.note", "missing: say how a protocol-less value was made")
        if (value_type == "number") != (decimals is not None):
            raise self.fail(f"{where}.decimals", "required for number columns, refused for text")
        return Column(
            key=take(data, where, "key", str),
            label=take(data, where, "label", str),
            kind=kind,
            type=value_type,
            metric=metric,
            direction=direction,
            unit=take(data, where, "unit", str),
            decimals=decimals,
            dataset=take(data, where, "dataset", str, None),
            protocol=protocol,
            settings=take(data, where, "settings", dict, {}),
            note=note,
        )

    def row(self, data: Any, where: str, columns: tuple[Column, ...]) -> Row:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table ([[rows]])")
        take = self.take
        self.no_extra(data, _ROW_KEYS, where)
        types = {c.key: c.type for c in columns}
        raw = take(data, where, "values", dict)
        missing = [key for key in types if key not in raw]
        if missing:
            raise self.fail(
                f"{where}.values.{missing[0]}", f'missing; write "{ABSENT}" for an empty cell'
            )
        self.no_extra(raw, types, f"{where}.values")
        values = {}
        for key, text in raw.items():
            name = f"{where}.values.{key}"
            if not isinstance(text, str):
                raise self.fail(name, f'write the printed text as a string, e.g. "{text}"')
            try:
                values[key] = parse_printed(text, name, types[key])
            except ValueError as error:
                raise BenchError(f"{self.path}: {error}") from None
        source = take(data, where, "source", str, "paper")
        self.one_of(source, SOURCE_STATUS, f"{where}.source")
        settings = take(data, where, "settings", dict, {})
        clash = sorted(set(settings) & set(types))
        if clash:
            raise self.fail(f"{where}.settings.{clash[0]}", "also a column key; rename one")
        marks = take(data, where, "marks", dict, {})
        paper_text = take(data, where, "paper_text", dict, {})
        unrounded = take(data, where, "unrounded", dict, {})
        for name, mapping in (("marks", marks), ("paper_text", paper_text)):
            self.no_extra(mapping, types, f"{where}.{name}")
            self.strings(list(mapping.values()), f"{where}.{name}")
        self.no_extra(unrounded, types, f"{where}.unrounded")
        for key, number in unrounded.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise self.fail(f"{where}.unrounded.{key}", f"expected a number, got {number!r}")
        unrounded_source = take(data, where, "unrounded_source", str, "")
        if unrounded and not unrounded_source:
            raise self.fail(f"{where}.unrounded_source", "missing: say where the figures come from")
        conflicts = tuple(
            self.conflict(c, f"{where}.conflicts[{i}]", types)
            for i, c in enumerate(take(data, where, "conflicts", list, []))
        )
        return Row(
            label=take(data, where, "label", str),
            method=take(data, where, "method", str),
            variant=take(data, where, "variant", str, None),
            source=source,
            settings=settings,
            values=values,
            marks=marks,
            paper_text=paper_text,
            unrounded={k: float(v) for k, v in unrounded.items()},
            unrounded_source=unrounded_source,
            conflicts=conflicts,
            note=take(data, where, "note", str, ""),
        )

    def conflict(self, data: Any, where: str, types: Mapping[str, str]) -> Conflict:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table {column, printed, source, note}")
        self.no_extra(data, ("column", "printed", "source", "note"), where)
        column = self.take(data, where, "column", str)
        self.one_of(column, types, f"{where}.column")
        printed = self.take(data, where, "printed", str)
        try:
            parse_printed(printed, f"{where}.printed", types[column])
        except ValueError as error:
            raise BenchError(f"{self.path}: {error}") from None
        source = self.take(data, where, "source", str)
        self.one_of(source, SOURCE_STATUS, f"{where}.source")
        return Conflict(column, printed, source, self.take(data, where, "note", str))

    def display(self, data: Any, where: str, keys: list[str]) -> Display:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table {label, template}")
        self.no_extra(data, ("label", "template"), where)
        display = Display(
            self.take(data, where, "label", str), self.take(data, where, "template", str)
        )
        unknown = [name for name in display.fields if name not in keys]
        if unknown or not display.fields:
            raise self.fail(f"{where}.template", f"must name columns; unknown: {unknown}")
        return display

    def product(self, data: Any, where: str, keys: list[str]) -> Product:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table {per_step, steps, total}")
        self.no_extra(data, ("per_step", "steps", "total"), where)
        names = {k: self.take(data, where, k, str) for k in ("per_step", "steps", "total")}
        for key, name in names.items():
            self.one_of(name, keys, f"{where}.{key}")
        return Product(**names)


_TABLE_KEYS = (
    "id", "paper", "table", "title", "source", "location", "page", "dataset", "protocol",
    "settings", "notes", "columns", "rows", "displays", "products",
)  # fmt: skip
_COLUMN_KEYS = (
    "key", "label", "kind", "type", "metric", "direction", "unit", "decimals", "dataset",
    "protocol", "settings", "note",
)  # fmt: skip
_ROW_KEYS = (
    "label", "method", "variant", "source", "settings", "values", "marks", "paper_text",
    "unrounded", "unrounded_source", "conflicts", "note",
)  # fmt: skip
