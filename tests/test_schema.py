"""bench.typed_toml, the one reader of bench.toml, manifests and published tables: one case per
kind of check, each against the message a user would read."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from bench import typed_toml
from bench.errors import BenchError, ConfigError, UsageError


@dataclass(frozen=True)
class Inner:
    size: int = field(metadata=typed_toml.at_least(1))
    scale: float = 1.0


@dataclass(frozen=True)
class Shape:
    name: str = field(metadata=typed_toml.choices(lambda: ("alpha", "beta")))
    mode: Literal["fast", "exact"] = "exact"
    steps: int | Literal["paper"] = field(default=5, metadata=typed_toml.at_least(1))
    ratio: float = field(default=0.5, metadata=typed_toml.between(0, 1))
    sizes: tuple[int, ...] = field(default=(), metadata=typed_toml.at_least(1))
    inner: Inner = field(default_factory=lambda: Inner(1))
    tables: dict[str, Inner] = field(default_factory=dict)
    items: tuple[Inner, ...] = ()
    folder: Path | None = None
    anything: Any = None
    flag: bool = False
    computed: str = field(default="", metadata=typed_toml.not_in_file())


def build(table, error=UsageError):
    return typed_toml.build(Shape, table, Path("f.toml"), error=error)


def test_a_valid_table_builds_with_conversions():
    got = build(
        {
            "name": "beta",
            "steps": "paper",
            "ratio": 1,  # an integer where a number belongs
            "sizes": [2, 3],
            "inner": {"size": 4},
            "tables": {"x": {"size": 2, "scale": 3}},
            "items": [{"size": 7}],
            "folder": "~/data",
            "anything": [1, "two"],
        }
    )
    assert got.steps == "paper" and got.ratio == 1.0 and isinstance(got.ratio, float)
    assert got.sizes == (2, 3) and got.inner == Inner(4, 1.0)
    assert got.tables == {"x": Inner(2, 3.0)} and got.items == (Inner(7),)
    assert got.folder == Path.home() / "data" and got.anything == [1, "two"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"name": "alpha", "stpes": 3},
            "f.toml: unknown key 'stpes'; valid keys in the top level: anything, flag, folder",
        ),  # fmt: skip
        ({}, "f.toml: the top level is missing key(s) name"),
        ({"name": "gamma"}, "f.toml: name = 'gamma' is not valid; valid choices: alpha, beta"),
        (
            {"name": "alpha", "mode": "slow"},
            "mode = 'slow' is not valid; valid choices: exact, fast",
        ),
        ({"name": "alpha", "steps": 0}, "f.toml: steps = 0 must be at least 1"),
        ({"name": "alpha", "steps": "many"}, "steps must be an integer or 'paper', got str 'many'"),
        ({"name": "alpha", "ratio": 1.5}, "ratio = 1.5 must be between 0 and 1"),
        ({"name": "alpha", "sizes": [2, 0]}, "sizes[1] = 0 must be at least 1"),
        ({"name": "alpha", "sizes": 2}, "sizes must be a list, got int 2"),
        ({"name": "alpha", "inner": {"size": 0}}, "inner.size = 0 must be at least 1"),
        ({"name": "alpha", "inner": 3}, "inner must be a table, got int 3"),
        (
            {"name": "alpha", "tables": {"x": {"sise": 1}}},
            "unknown key 'tables.x.sise'; valid keys in tables.x: scale, size",
        ),  # fmt: skip
        ({"name": "alpha", "items": [{"size": 1}, {}]}, "items[1] is missing key(s) items[1].size"),
        ({"name": "alpha", "folder": ""}, "folder must be a path string, got str ''"),
        ({"name": "alpha", "flag": 1}, "flag must be true or false, got int 1"),
        (
            {"name": "alpha", "inner": {"size": True}},
            "inner.size must be an integer, got bool True",
        ),
        ({"name": "alpha", "computed": "x"}, "unknown key 'computed'"),
    ],
)
def test_each_problem_is_one_error_naming_the_file_and_key(table, message):
    with pytest.raises(UsageError) as raised:
        build(table)
    assert message in str(raised.value)


def test_the_error_class_is_the_callers():
    with pytest.raises(ConfigError):
        build({}, ConfigError)
    with pytest.raises(BenchError) as raised:
        build({}, BenchError)
    assert type(raised.value) is BenchError


def test_read_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("a = [")
    with pytest.raises(UsageError, match=r"bad.toml: not valid TOML"):
        typed_toml.read_toml(path)
    with pytest.raises(BenchError, match=r"absent.toml: cannot be read"):
        typed_toml.read_toml(tmp_path / "absent.toml", BenchError)
