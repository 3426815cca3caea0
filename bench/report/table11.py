"""Table 11 from the networks alone: every method of RDDM Table 11 at the papers'
configuration (256x256, the paper's widths, options and steps), its parameters and MACs
counted as the paper did (thop 0.1.1) and audited (parameter sum, torch flop counter),
beside the printed counts. No training and no run are needed: the networks are built and
counted on the meta device (bench.cost.static_counts). Measured latency joins from
finished runs of the same method and dataset at 256x256 when there are any."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from functools import lru_cache

from bench.report.common import bench_name, by_seed, format_number, heading, md_table, settings_key
from bench.report.published import ABSENT, PublishedTable, Row
from bench.report.runs import TrackedRun

TABLE_11 = ("rddm-table-11a", "rddm-table-11b", "rddm-table-11c")
PAPER_SIZE = 256


@lru_cache(maxsize=32)
def _counts(method: str, task: str, has_mask: bool, options: str, steps: int) -> dict:
    import warnings

    from baselines import build_method, paper_settings
    from bench.cost import static_counts

    settings = paper_settings(method, task).get("options", {}) | json.loads(options)
    with warnings.catch_warnings():  # thop's distutils deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        built = build_method(
            method, image_size=PAPER_SIZE, mask_channels=1 if has_mask else 0, **settings
        )
        return static_counts(built, PAPER_SIZE, steps)


def _printed(row: Row, key: str) -> str:
    value = row.values.get(key)
    return "–" if value is None or value.absent else value.text


def _steps(row: Row, method: str, task: str) -> int:
    from baselines import paper_settings

    printed = row.values.get("steps")
    if printed is not None and not printed.absent:
        return int(float(printed.value))  # type: ignore[arg-type]
    return int(paper_settings(method, task).get("steps") or 1)


def table11_markdown(
    tables: list[PublishedTable],
    runs: list[TrackedRun],
    link: Callable[[TrackedRun], str],
    md_table: Callable[[list[str], list[list[str]]], str],
) -> str:
    """``## Table 11 from the networks``: published against counted, per method row."""
    from bench.data import get_dataset
    from bench.report.reproduce import DATASETS, _method_options, bench_method

    header = [
        "Table", "Row", "bench method", "Steps",
        "Params THOP (M): paper / bench", "Params audited (M)",
        "GMACs/step THOP: paper / bench", "GMACs/step audited",
        "GMACs/image THOP: paper / bench", "GMACs/image audited",
        "Latency/image at 256² (s), measured",
    ]  # fmt: skip
    rows = []
    for table in (t for t in tables if t.id in TABLE_11):
        spec = get_dataset(DATASETS.get(table.dataset or "", table.dataset or ""))
        for row in table.rows:
            found = bench_method(row)
            if found is None:
                continue
            method, fixed = found
            options = fixed | _method_options(method, row.settings, spec.task)
            steps = _steps(row, method, spec.task)
            counts = _counts(method, spec.task, spec.has_mask, json.dumps(options, sort_keys=True), steps)  # fmt: skip
            latency = _paper_size_latency(runs, method, spec.name, link)
            rows.append(
                [
                    _table_label(table), row.label, f"`{method}`", str(steps),
                    f"{_printed(row, 'params_m')} / {counts['params_thop'] / 1e6:.2f}",
                    f"{counts['params'] / 1e6:.2f}",
                    f"{_printed(row, 'macs_per_step_g')} / {counts['macs_thop'] / 1e9:.1f}",
                    f"{counts['macs'] / 1e9:.1f}",
                    f"{_printed(row, 'macs_g')} / {counts['macs_thop_per_image'] / 1e9:.1f}",
                    f"{counts['macs_per_image'] / 1e9:.1f}",
                    latency,
                ]
            )  # fmt: skip
    text = [
        "## Table 11 from the networks: the papers' configuration, counted",
        "",
        "Every bench method of RDDM Table 11 built at the papers' configuration (256x256, "
        "each paper's widths, options and sampling steps) and counted without training: "
        "THOP as the paper printed it (thop 0.1.1 counts weight-standardised convolutions, "
        "norms and attention as zero) beside the audited parameter sum and torch flop "
        "counter MACs. Where the THOP columns agree with the paper, bench's networks are the "
        "papers'; the audited columns are what the networks really cost.",
        "",
    ]
    return "\n".join([*text, md_table(header, rows), ""]) if rows else ""


def _table_label(table: PublishedTable) -> str:
    if table.table.startswith("11"):
        return f"11({table.table.removeprefix('11(').rstrip(')')})"
    return table.table


def _paper_size_latency(
    runs: list[TrackedRun], method: str, dataset: str, link: Callable[[TrackedRun], str]
) -> str:
    """The median latency per image of the method's runs at the papers' 256², linked."""
    measured = [
        r for r in runs
        if r.method == method and r.dataset == dataset and r.image_size == PAPER_SIZE
        and "profile/latency_image_s" in r.metrics
    ]  # fmt: skip
    if not measured:
        return "– (no run at 256²)"
    median = statistics.median(r.metrics["profile/latency_image_s"] for r in measured)
    return f"{median:.3g} " + ", ".join(f"[{r.run_id[:8]}]({link(r)})" for r in measured)


def resources_markdown(
    tables: list[PublishedTable], finished: list[TrackedRun], link: Callable[[TrackedRun], str]
) -> tuple[str, set[str]]:
    """``## Table 11 beside bench``: parameters, MACs and latency of every measured run,
    with the paper's counts; and the ids of the runs it shows."""

    measured: dict[tuple, list[TrackedRun]] = {}
    placed: set[str] = set()
    for run in finished:
        if "profile/params_m" in run.metrics or "profile/params_thop_m" in run.metrics:
            measured.setdefault(settings_key(run), []).append(run)
    header = [
        "Method", "Dataset", "Profile", "Image (px)", "UNet dim", "Steps",
        "Params THOP (M)", "Params audited (M)", "GMACs/step THOP", "GMACs/step audited",
        "GMACs/image THOP", "GMACs/image audited", "Latency/step (s)", "Latency/image (s)",
        "Hardware", "Paper (THOP)", "Runs",
    ]  # fmt: skip
    rows = []
    for key in sorted(measured):
        runs = by_seed(measured[key])
        placed.update(r.run_id for r in runs)
        rows.append(_resources_row(runs, tables, link))
    text = [
        "## Table 11 beside bench: parameters, MACs and latency of every measured run",
        "",
        "THOP columns count as the paper did (thop 0.1.1: weight-standardised convolutions, "
        "norms and attention count zero); audited columns are the parameter sum and "
        "torch.utils.flop_counter MACs (docs/methods.md §5). Latency is the median of one "
        "forward per network, summed over networks, times the sampling steps, measured on "
        "the hardware named; the paper's times are from an unspecified GPU (its "
        "experiments ran on one RTX 3090), so they are compared, never subtracted.",
        "",
    ]
    if not rows:
        text += ["No finished run has a profile yet: run `bench run` (any dataset).", ""]
        return "\n".join(text), placed
    return "\n".join([*text, md_table(header, rows), ""]), placed


#: the profile metrics of Table 11 beside bench, in its column order
_RESOURCE_KEYS = (
    "profile/params_thop_m", "profile/params_m", "profile/gmacs_thop_step",
    "profile/gmacs_step", "profile/gmacs_thop_image", "profile/gmacs_image",
    "profile/latency_step_s", "profile/latency_image_s",
)  # fmt: skip


def _resources_row(
    runs: list[TrackedRun], tables: list[PublishedTable], link: Callable[[TrackedRun], str]
) -> list[str]:
    """One setting's runs: the mean of each profile metric over seeds, the hardware, the
    paper's counts and the links."""
    first = runs[0]
    values = []
    for metric in _RESOURCE_KEYS:
        found = [r.metrics[metric] for r in runs if metric in r.metrics]
        decimals = 2 if "params" in metric or "gmacs" in metric else 3
        values.append(format_number(statistics.fmean(found), decimals, significant=True) if found else ABSENT)  # fmt: skip
    links = ", ".join(f"[seed {r.seed}]({link(r)})" for r in runs)
    hardware = ", ".join(sorted({r.hardware for r in runs}))
    return [
        f"`{first.method}`", f"`{first.dataset}`", first.profile or "unknown",
        str(first.image_size or "?"), str(first.unet_dim or "?"),
        str(first.steps or "?"), *values, hardware,
        paper_resources(tables, first.method or "", first.dataset or ""), links,
    ]  # fmt: skip


def paper_resources(tables: list[PublishedTable], method: str, dataset: str) -> str:
    """The paper's THOP params and MACs per step for this method, preferring the dataset."""

    found = []
    for table in tables:
        if "params_m" not in {c.key for c in table.columns}:
            continue
        for row in table.rows:
            mapped = bench_name(row)
            params = row.values["params_m"]
            if mapped != method or params.absent:
                continue
            macs = row.values.get("macs_per_step_g")
            per_step = f", {macs.text} G/step" if macs is not None and not macs.absent else ""
            text = f"{params.text} M{per_step} ({heading(table)}: {row.label})"
            found.append((table.dataset != dataset, len(found), text))
    return min(found)[2] if found else ABSENT
