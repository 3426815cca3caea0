"""Which `bench run` invocations reproduce which published cells.

One rule serves both directions: :func:`table_slots` turns a published row into the runs
that would measure it (registry method, bench dataset, sampling steps, method options,
pinned iterations); ``bench run --table`` runs them (:func:`table_plan`) and
``bench report`` matches tracked runs to published cells with the same slots, so a table
filled by ``bench run --table X`` is exactly the table ``bench report`` shows complete.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.data import get_dataset
from bench.errors import UsageError, choices
from bench.report.published import NO_PROTOCOL, PublishedTable, Row, load_published

#: The tables ``bench report`` mirrors, in the papers' order. Left out: 3(a) (a pretrained
#: google/ddpm-celebahq-256 that bench cannot train), 3(e) (the talk's copy of Table 9's
#: row) and 4 (training settings, no measurements).
REPORTED = (
    "rddm-table-1",
    "rddm-table-2",
    "rddm-table-3b",
    "rddm-table-3c",
    "rddm-table-3d",
    "rddm-table-5",
    "rddm-table-6",
    "rddm-table-7",
    "rddm-table-8",
    "rddm-table-9",
    "rddm-table-10",
    "rddm-table-11a",
    "rddm-table-11b",
    "rddm-table-11c",
    "resfusion-table-1",
    "resfusion-table-2",
    "resfusion-table-3",
    "resfusion-table-5",
    "resfusion-table-7-istd",
    "resfusion-table-7-lol",
    "resfusion-table-7-raindrop",
    "resfusion-table-8",
    "resfusion-available",
    "sr3-official-readme",
)

#: published dataset name -> bench dataset (datasets/*.toml); others are the same name
DATASETS = {"celeba64": "celeba", "sid": "sid-rgb"}

#: (published method, variant) -> (registry name, options that make it that variant).
#: ``rddm`` takes its objective from the task's Table 4 row (SM-Res on low-light), so the
#: SM-Res-N-2Net rows pin objective=res_noise (Table 8's SID rows are SM-Res-N-2Net).
METHODS: dict[tuple[str, str | None], tuple[str, dict[str, Any]]] = {
    ("rddm", "sm-res"): ("rddm-sm-res", {}),
    ("rddm", "sm-n"): ("rddm-sm-n", {}),
    ("rddm", "sm-res-n-2net"): ("rddm", {"objective": "res_noise"}),
    ("rddm", "sm-res-n-1net"): ("rddm-1net", {}),
    ("rddm", "sm-res-n-1net-shared-encoder"): ("rddm-shared-encoder", {}),
    ("sr3", None): ("sr3", {}),
    ("resfusion", None): ("resfusion", {}),
    ("ddim", None): ("ddim", {}),
}

#: Table 2's schedule names -> RDDM options (baselines/schedules.py): the DDPM schedules
#: through eq. 17, the others as power schedules with the stated shapes.
SCHEDULES: dict[str, dict[str, str]] = {
    "ddim-linear": {"schedule": "ddim-linear"},
    "scaled-linear": {"schedule": "ddim-scaled-linear"},
    "squared-cosine": {"schedule": "ddim-squared-cosine"},
    **{
        f"alpha-{a}-beta2-{b}": {"schedule": "power", "alpha_shape": a, "beta_shape": b}
        for a, b in [
            ("mean", "mean"),
            ("increasing", "increasing"),
            ("decreasing", "decreasing"),
            ("decreasing", "increasing"),
        ]
    },
}

#: methods whose iteration count is part of the row's identity: SR3's 80k/500k/1000k rows
#: of Table 11(b), a budget the paper settings do not state (baselines.paper_settings).
PINNED_ITERATIONS = frozenset({"sr3"})

PROFILE = "paper"


@dataclass(frozen=True)
class PlannedRun:
    """One ``bench run`` invocation: ``steps``/``iterations`` None = the profile's value."""

    dataset: str
    methods: tuple[str, ...]
    steps: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    iterations: int | None = None
    profile: str = PROFILE


@dataclass(frozen=True)
class Slot:
    """The published values of one row that one bench run measures (one dataset)."""

    table_id: str
    row_index: int
    method: str
    dataset: str
    protocol: str
    steps: int | None
    options: tuple[tuple[str, Any], ...]
    iterations: int | None
    columns: tuple[str, ...]

    @property
    def key(self) -> tuple:
        """What a run must match; rows of one table that share it share their runs."""
        return (self.method, self.dataset, self.steps, self.options, self.iterations)

    def planned(self, profile: str = PROFILE) -> PlannedRun:
        return PlannedRun(
            self.dataset, (self.method,), self.steps, dict(self.options), self.iterations, profile
        )


def bench_method(row: Row) -> tuple[str, dict[str, Any]] | None:
    """The registry name and options for a published row, or None (not in bench)."""
    return METHODS.get((row.method, row.variant))


def _method_options(method: str, settings: Mapping[str, Any], task: str) -> dict[str, Any]:
    if method == "resfusion":
        return _resfusion_options(settings, task)
    if not method.startswith("rddm"):
        return {}  # β̄²_T and the schedules are RDDM's options only
    options: dict[str, Any] = {}
    if "sum_scale" in settings:
        options["sum_scale"] = settings["sum_scale"]
    if "schedule" in settings:
        options.update(SCHEDULES[settings["schedule"]])
    return options


def _resfusion_options(settings: Mapping[str, Any], task: str) -> dict[str, Any]:
    """Resfusion samples in exactly T' steps, fixed by T: a table printing another step count
    than its paper settings' is a model with the smallest T that gives it (Table 5's 10, 20
    and 50 steps; the paper's own example is T = 25 for T' = 10)."""
    from baselines import paper_settings
    from baselines.schedules import resfusion_timesteps_for

    steps = settings.get("steps")
    if steps is None or int(steps) == paper_settings("resfusion", task)["steps"]:
        return {}
    return {"timesteps": resfusion_timesteps_for(int(steps))}


def table_slots(table: PublishedTable) -> list[Slot]:
    """Every (row, dataset) of ``table`` that a bench method can measure, in table order."""
    slots = []
    for index, row in enumerate(table.rows):
        found = bench_method(row)
        if found is None:
            continue
        method, fixed = found
        columns: dict[tuple, list[str]] = {}
        for column in table.columns:
            if column.kind == "setting":
                continue
            cell = table.context(row, column)
            if cell.protocol in (None, NO_PROTOCOL) or cell.dataset is None:
                continue
            settings = cell.settings
            dataset = DATASETS.get(cell.dataset, cell.dataset)
            options = {**fixed, **_method_options(method, settings, get_dataset(dataset).task)}
            steps = settings.get("steps")
            iterations = settings.get("iterations") if method in PINNED_ITERATIONS else None
            key = (
                dataset,
                cell.protocol,
                None if steps is None else int(steps),
                tuple(sorted(options.items())),
                iterations,
            )
            columns.setdefault(key, []).append(column.key)
        for (dataset, protocol, steps, options, iterations), keys in columns.items():
            slots.append(
                Slot(
                    table.id,
                    index,
                    method,
                    dataset,
                    protocol,
                    steps,
                    options,
                    iterations,
                    tuple(keys),
                )
            )
    return slots


def reported_tables(tables: Mapping[str, PublishedTable] | None = None) -> list[PublishedTable]:
    tables = load_published() if tables is None else tables
    return [tables[table_id] for table_id in REPORTED if table_id in tables]


def table_plan(
    table_id: str, tables: Mapping[str, PublishedTable] | None = None
) -> list[PlannedRun]:
    """The ``bench run`` invocations that fill ``table_id``; methods sharing a dataset,
    steps, options and iterations go into one invocation."""
    tables = load_published() if tables is None else tables
    if table_id not in REPORTED or table_id not in tables:
        raise UsageError(
            f"unknown table '{table_id}'; valid tables: "
            f"{choices(t for t in REPORTED if t in tables)}"
        )
    grouped: dict[tuple, list[str]] = {}
    for slot in table_slots(tables[table_id]):
        methods = grouped.setdefault((slot.dataset, slot.steps, slot.options, slot.iterations), [])
        if slot.method not in methods:
            methods.append(slot.method)
    return [
        PlannedRun(dataset, tuple(sorted(methods)), steps, dict(options), iterations)
        for (dataset, steps, options, iterations), methods in grouped.items()
    ]


def option_text(value: Any) -> str:
    """A value as ``--option`` reads it back (TOML, a bare word for plain strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    try:
        tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text  # not TOML: --option keeps it as the string it is
    return f'"{text}"'


def command(planned: PlannedRun) -> str:
    """The exact CLI command for ``planned``."""
    parts = ["bench", "run", planned.dataset, "--methods", ",".join(planned.methods)]
    parts += ["--profile", planned.profile]
    if planned.steps is not None:
        parts += ["--steps", str(planned.steps)]
    if planned.iterations is not None:
        parts += ["--iters", str(planned.iterations)]
    for key, value in sorted(planned.options.items()):
        parts += ["--option", f"{key}={option_text(value)}"]
    return shlex.join(parts)
