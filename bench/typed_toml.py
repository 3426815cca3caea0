"""One typed reader for every TOML file bench reads: ``bench.toml``, the dataset manifests and
the published tables (docs/architecture.md, "Reading files").

A file's shape is a frozen dataclass. :func:`build` checks a parsed table against the type
hints and field metadata of that dataclass and returns an instance, or raises one error that
names the file, the key (``rows[3].values.psnr``) and what would be valid:

- unknown keys (with the valid keys of that table) and missing keys;
- wrong types, with the value found: ``int``, ``float`` (an integer is taken), ``str``,
  ``bool``, ``Path`` (a non-empty string), ``Any`` (anything);
- ``Literal[...]`` values, and :func:`choices` metadata for names known only at run time
  (protocols, tasks, sources);
- :func:`at_least` / :func:`between` metadata for numbers (a string such as "paper" in a
  ``int | Literal["paper"]`` field is not a number and is not range-checked);
- nested dataclasses (TOML tables), ``dict[str, X]`` and ``Mapping[str, X]`` (tables of
  values), ``tuple[X, ...]`` (arrays, ``[[tables]]`` included), unions tried in order.

What a shape cannot say (a split named but not defined, a column that needs a direction) the
reader of each file checks after ``build``, raising the same error class through
:func:`fail`, so every message starts with the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from bench.errors import BenchError, UsageError
from bench.errors import choices as format_choices

T = TypeVar("T")

#: metadata key: the field is not read from the file (set by the reader afterwards)
NOT_IN_FILE = "not_in_file"


def choices(valid: Iterable[str] | Callable[[], Iterable[str]]) -> dict[str, Any]:
    """Field metadata: the value must be one of ``valid`` (or of what ``valid()`` returns)."""
    return {"choices": valid}


def at_least(least: float) -> dict[str, Any]:
    """Field metadata: a number no smaller than ``least``."""
    return {"range": (least, None)}


def between(least: float, most: float) -> dict[str, Any]:
    """Field metadata: a number in [``least``, ``most``]."""
    return {"range": (least, most)}


def not_in_file() -> dict[str, Any]:
    """Field metadata: the field is the reader's, never a key of the file."""
    return {NOT_IN_FILE: True}


def read_toml(path: Path, error: type[BenchError] = UsageError) -> dict[str, Any]:
    """The parsed file, or ``error`` naming it: not valid TOML, or not readable."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: not valid TOML ({problem})") from None
    except OSError as problem:
        raise error(f"{path}: cannot be read ({problem.strerror})") from None


def fail(error: type[BenchError], source: Path | str, key: str, problem: str) -> BenchError:
    """The error for a value that passed :func:`build` but breaks a rule of its file."""
    return error(f"{source}: {key} {problem}" if key else f"{source}: {problem}")


def build(
    cls: type[T],
    table: Any,
    source: Path | str,
    *,
    error: type[BenchError] = UsageError,
    prefix: str = "",
) -> T:
    """An instance of the dataclass ``cls`` from the parsed ``table`` (see the module doc)."""
    return _Reader(source, error).build(cls, table, prefix)


class _Reader:
    def __init__(self, source: Path | str, error: type[BenchError]) -> None:
        self.source, self.error = source, error

    def fail(self, message: str) -> BenchError:
        return self.error(f"{self.source}: {message}")

    def build(self, cls: type, table: Any, prefix: str) -> Any:
        where = prefix.rstrip(".") or "the top level"
        if not isinstance(table, dict):
            raise self.fail(f"{where} must be a table, got {_describe(table)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get(NOT_IN_FILE)}
        unknown = sorted(set(table) - set(fields))
        if unknown:
            raise self.fail(
                f"unknown key '{prefix}{unknown[0]}'; valid keys in {where}: "
                f"{format_choices(fields)}"
            )
        missing = [
            name
            for name, f in fields.items()
            if name not in table
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.fail(f"{where} is missing key(s) {', '.join(prefix + m for m in missing)}")
        values = {}
        for name, value in table.items():
            key = prefix + name
            values[name] = self.convert(hints[name], value, key)
            self.check_metadata(fields[name].metadata, values[name], key)
        return cls(**values)

    def check_metadata(self, metadata: Mapping[str, Any], value: Any, key: str) -> None:
        """``choices`` and range metadata, item by item for a list."""
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                self.check_metadata(metadata, item, f"{key}[{i}]")
            return
        valid = metadata.get("choices")
        if valid is not None and value is not None:
            names = tuple(valid() if callable(valid) else valid)
            if value not in names:
                raise self.fail(
                    f"{key} = {value!r} is not valid; valid choices: "
                    f"{format_choices(map(str, names))}"
                )
        bounds = metadata.get("range")
        if bounds is not None and _is_number(value):
            least, most = bounds
            if least is not None and value < least or most is not None and value > most:
                bound = f"between {least} and {most}" if most is not None else f"at least {least}"
                raise self.fail(f"{key} = {value} must be {bound}")

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        """``value`` read at ``key`` as type ``hint``, or one error naming the key."""
        if hint is Any:
            return value
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, key + ".")
        shapes = {
            dict: self._table, Mapping: self._table, tuple: self._list, Literal: self._literal,
            typing.Union: self._union, types.UnionType: self._union,
        }  # fmt: skip
        shape = shapes.get(typing.get_origin(hint))
        if shape is not None:
            return shape(typing.get_args(hint), value, key)
        return self._scalar(hint, value, key)

    def _table(self, args: tuple, value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(f"{key} must be a table, got {_describe(value)}")
        return {name: self.convert(args[1], item, f"{key}.{name}") for name, item in value.items()}

    def _list(self, args: tuple, value: Any, key: str) -> tuple:
        if not isinstance(value, list):
            raise self.fail(f"{key} must be a list, got {_describe(value)}")
        return tuple(self.convert(args[0], item, f"{key}[{i}]") for i, item in enumerate(value))

    def _literal(self, args: tuple, value: Any, key: str) -> Any:
        if value not in args:
            raise self.fail(
                f"{key} = {value!r} is not valid; valid choices: {format_choices(map(str, args))}"
            )
        return value

    def _union(self, args: tuple, value: Any, key: str) -> Any:
        present = [option for option in args if option is not type(None)]
        if len(present) == 1 and value is not None:  # X | None: X's own error, naming the key
            return self.convert(present[0], value, key)
        for option in args:
            try:
                return self.convert(option, value, key)
            except BenchError:
                continue
        # TOML has no null: None in a union means the key may be left out
        expected = " or ".join(_name(option) for option in args if option is not type(None))
        raise self.fail(f"{key} must be {expected}, got {_describe(value)}")

    def _scalar(self, hint: Any, value: Any, key: str) -> Any:
        if hint is type(None):
            if value is not None:  # TOML has no null: reached only inside a union
                raise self.fail(f"{key} must be absent, got {_describe(value)}")
            return value
        if hint is Path:
            if not isinstance(value, str) or not value:
                raise self.fail(f"{key} must be a path string, got {_describe(value)}")
            return Path(value).expanduser()
        if hint is float and _is_number(value):
            return float(value)
        if hint is int and isinstance(value, bool) or not isinstance(value, hint):
            raise self.fail(f"{key} must be {_name(hint)}, got {_describe(value)}")
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return "a list"
    if typing.get_origin(hint) in (dict, Mapping) or dataclasses.is_dataclass(hint):
        return "a table"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             Path: "a path string"}  # fmt: skip
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
