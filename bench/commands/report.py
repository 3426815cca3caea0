"""`bench report`: the papers' tables filled from tracked runs, with plots.

Output: ``<out>/report.md`` and ``<out>/plots/*.png``; ``--out`` defaults to
``reports/<experiment>/`` beside the results folder (``paths.results_dir``'s parent, the
folder of bench.toml in the default layout), so each experiment keeps its own report and
the papers' data in ``reports/published/`` is never touched.

A store or experiment that does not exist is an error (exit 1) naming the experiments
that do exist: a report of nothing from a mistyped name would look like a real one. An
existing experiment without runs gives the all-dash report with a warning. ``--list``
never fails on a missing experiment: it shows the plan with nothing filled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from bench import console
from bench.errors import BenchError
from bench.files import atomic_write
from bench.options import (
    ConfigOption,
    ExperimentOption,
    JsonOption,
    QuietOption,
    TrackingUriOption,
    examples,
    setup,
)

EXAMPLE = examples(
    "bench report                         # reports/<experiment>/report.md and plots/",
    "bench report --experiment quick --out /tmp/quick-report",
    "bench report --list                  # the tables and how complete each is",
    "bench report --all-tables            # every paper table, measured or not",
)

PLOTS = {
    "learning.png": "Learning curves: the headline metric of the EMA against iterations",
    "steps.png": "Quality against sampling steps",
    "latency.png": "Quality against measured latency per image",
    "loss.png": "Training loss (train/loss)",
}


def _folder_name(experiment: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-.") or "experiment"


def report(
    experiment: ExperimentOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for report.md and plots/ [default: reports/<experiment> beside "
            "the results folder].",
            file_okay=False,
        ),
    ] = None,
    list_tables: Annotated[
        bool, typer.Option("--list", help="List the tables and how complete each is.")
    ] = False,
    all_tables: Annotated[
        bool,
        typer.Option(
            "--all-tables",
            help="Print every paper table in full [default: only those with a measured cell; "
            "the others are listed with the command that fills them].",
        ),
    ] = False,
    plots: Annotated[bool, typer.Option(help="Draw the PNG plots and the sample grids.")] = True,
    tracking_uri: TrackingUriOption = None,
    config_path: ConfigOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write the papers' tables with bench's measured values, differences and protocols."""
    from bench.report.build import ReportBuilder
    from bench.report.runs import Store, read_store

    config = setup(
        config_path,
        quiet,
        as_json,
        {"tracking": {"uri": tracking_uri, "experiment": experiment}},
    )
    uri, name = config.tracking_uri(), config.tracking.experiment
    if list_tables:
        try:
            store = read_store(uri, name)
        except BenchError as failure:
            console.warn(f"{failure}; listing the tables with nothing filled")
            store = Store(uri, name, None)
        _list(ReportBuilder(store))
        return
    store = read_store(uri, name)
    if not store.runs:
        console.warn(f"experiment '{name}' has no runs: every measured cell is a dash")
    folder = (
        out if out is not None else config.paths.results_dir.parent / "reports" / _folder_name(name)
    )
    builder = ReportBuilder(store, all_tables=all_tables)
    drawn = _draw(store, folder / "plots") if plots else {}
    grids = _draw_grids(store, folder / "plots") if plots else {}
    markdown = builder.markdown(
        {f"plots/{file}": PLOTS[file] for file in drawn},
        {group: f"plots/{file}" for group, file in grids.items()},
        _docs(folder),
    )
    path = folder / "report.md"
    with atomic_write(path) as handle:
        handle.write(markdown.encode("utf-8"))
    done = [builder.completeness(table) for table in builder.tables]
    console.emit(
        {
            "report": str(path),
            "plots": [str(folder / "plots" / file) for file in [*drawn, *grids.values()]],
            "runs": len(store.runs),
            "tables": [vars(d) for d in done],
        }
    )
    console.info(
        f"wrote {path} ({len(store.runs)} run(s), {len(drawn)} plot(s), "
        f"{len(grids)} sample grid(s)); "
        f"{sum(d.filled_any for d in done)}/{sum(d.slots for d in done)} reproducible cells "
        "measured; `bench report --list` shows what is missing"
    )


def _list(builder) -> None:
    done = [builder.completeness(table) for table in builder.tables]
    rows = [
        [d.table_id, d.title, f"{d.filled_paper}/{d.slots}", f"{d.filled_any}/{d.slots}"]
        for d in done
    ]
    table = console.table(
        f"tables of experiment '{builder.store.experiment}' (fill one: bench run --table ID)",
        ["id", "table", "filled (paper profile)", "filled (any profile)"],
        rows,
    )
    console.emit([vars(d) for d in done], table)


def _draw(store, folder: Path) -> list[str]:
    """The plots there is data for; a plot from an earlier report with no data now is removed."""
    from bench.report import plots
    from bench.report.runs import metric_history

    finished = [r for r in store.runs if r.kind == "cell" and r.finished]
    curves = {
        f"{r.method} {r.dataset} seed {r.seed} ({r.profile}) {r.run_id[:8]}": metric_history(
            store.uri, r.run_id, plots.LOSS
        )
        for r in finished
    }
    learning = _learning_curves(store, finished)
    floors = _identity_floors(store, learning)
    made = {
        "learning.png": plots.learning_plot(learning, floors, folder / "learning.png"),
        "steps.png": plots.steps_plot(finished, folder / "steps.png"),
        "latency.png": plots.latency_plot(finished, folder / "latency.png"),
        "loss.png": plots.loss_plot(curves, folder / "loss.png"),
    }
    for file, drawn in made.items():
        if not drawn:
            (folder / file).unlink(missing_ok=True)
    return [file for file, drawn in made.items() if drawn]


def _learning_curves(store, finished: list) -> dict[tuple[str, str], dict[str, list]]:
    """Per (dataset, curve metric), each run's learning curve (--eval-every)."""
    from bench.report import plots
    from bench.report.runs import metric_history

    learning: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    for run in finished:
        if key := plots.curve_key(run):
            label = f"{run.method} seed {run.seed} ({run.profile}) {run.run_id[:8]}"
            learning.setdefault((run.dataset or "?", key), {})[label] = metric_history(
                store.uri, run.run_id, key
            )
    return learning


def _identity_floors(store, learning: dict) -> dict[tuple[str, str], float]:
    """Each curve's floor: the newest identity baseline of its dataset on its metric."""
    floors: dict[tuple[str, str], float] = {}
    for run in (r for r in store.runs if r.kind == "identity"):
        for dataset, key in learning:
            final = key.replace("curve/", "", 1)
            if run.dataset == dataset and final in run.metrics:
                floors[(dataset, key)] = run.metrics[final]
    return floors


def _draw_grids(store, folder: Path) -> dict:
    """The sample grids, one per dataset and profile; older grids are replaced."""
    from bench.report.samples import comparison_grids

    for old in folder.glob("samples-*.png"):
        old.unlink()
    return comparison_grids(store, folder)


def _docs(folder: Path) -> tuple[Path, str] | None:
    """The project's docs folder and its path from the report folder, when bench runs from a
    checkout (references then become links); None for an installed copy without docs."""
    import os

    import bench

    docs = Path(bench.__file__).resolve().parent.parent / "docs"
    if not docs.is_dir():
        return None
    return docs, Path(os.path.relpath(docs, folder.resolve())).as_posix()
