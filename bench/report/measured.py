"""The report's first section: every measured run beside its identity baseline.

Grouped by dataset and profile, so a smoke run shows up in the report right after `bench run`
even though no paper table prints smoke numbers. Only the store's values are shown."""

from __future__ import annotations

from collections.abc import Callable

from bench.conventions import MetricKey, identity_label
from bench.report.runs import Store, TrackedRun


def format_measured(value: float | None) -> str:
    """One format for every measured number, as `bench run` and the audit print them: two
    decimals from 10 up, four below (17.60 and 0.8103, never 17.6 beside 29.60)."""
    from bench.audit import format_value

    return "–" if value is None else format_value(value, None, True)


def images_scored(run: TrackedRun) -> str:
    """How many test images were scored; a subset is marked, never passed off as the split."""
    scored = run.tags.get("eval_images", "")
    return f"{scored} (subset)" if run.tags.get("eval_subset") == "yes" else scored.split("/")[0]


def metric_keys(runs: list[TrackedRun]) -> list[str]:
    """The runs' metrics, each protocol's headlines first in its declared order (the order
    of `bench run`'s table), then the rest by name."""
    from bench.conventions import HEADLINES, base_of

    protocols = {r.protocol for r in runs if r.protocol}
    prefixes = tuple(f"{p}/" for p in protocols)
    found = {k for r in runs for k in r.metrics if k.startswith(prefixes)}
    first = [
        str(MetricKey(protocol, spec.key))
        for protocol in sorted(protocols)
        for spec in HEADLINES.get(base_of(protocol), ())
    ]
    ordered = [key for key in first if key in found]
    return ordered + sorted(found - set(ordered))


def gap_metric(runs: list[TrackedRun]) -> str | None:
    """The first headline metric whose gap to the input the runs logged (``istd/psnr_all``)."""
    from bench.conventions import HEADLINES, base_of

    for run in runs:
        for spec in HEADLINES.get(base_of(run.protocol or ""), ()):
            name = MetricKey(run.protocol, f"{spec.key}_vs_identity_ci_low", "interval")
            if str(name) in run.metrics:
                return str(MetricKey(run.protocol, spec.key))
    return None


def gap_cells(run: TrackedRun, metric: str) -> list[str]:
    """The gaps to the input and to the best method of the seed, with their intervals, and
    the flags bench run printed (docs/statistics.md)."""
    from bench.conventions import HEADLINES, base_of
    from bench.statistics import flags, format_difference

    name = MetricKey.parse(metric)

    def value(suffix: str) -> float | None:
        return run.metrics.get(str(MetricKey(name.protocol, f"{name.metric}_{suffix}", "interval")))

    def gap(against: str) -> str:
        diff, low, high = (value(f"vs_{against}_{part}") for part in ("diff", "ci_low", "ci_high"))
        if diff is None or low is None or high is None:
            return ""
        return format_difference(diff, low, high)

    if not gap("identity"):
        return ["", "", ""]
    spec = next(s for s in HEADLINES[base_of(name.protocol)] if s.key == name.metric)
    low, high = value("vs_identity_ci_low"), value("vs_identity_ci_high")
    worse = (low > 0) if spec.lower_is_better else (high < 0)
    said = flags(worse, value("vs_identity_p_holm"), not gap("best"), value("vs_best_p_holm"))
    return [gap("identity"), gap("best"), ", ".join(said)]


def measured_markdown(store: Store, link: Callable[[TrackedRun], str], table) -> list[str]:
    """``## Measured runs``: one table per (dataset, profile), newest identity first."""
    measured = [r for r in store.runs if r.kind in ("cell", "identity") and r.dataset]
    if not any(r.kind == "cell" for r in measured):
        return []
    groups: dict[tuple[str, str], list[TrackedRun]] = {}
    for run in measured:
        groups.setdefault((run.dataset or "?", run.profile or "?"), []).append(run)
    parts = [
        "## Measured runs",
        "",
        "Every run in the store, grouped by dataset and profile, beside the identity baseline "
        "(the degraded input scored as the output: the floor a method must beat). Smoke runs "
        "are far from the papers' budgets, and a run marked (subset) scored only the first "
        "images of the test split; the paper tables below hold whole-split runs only. Where "
        "a run logged it, the gap to the input comes with its 95% paired bootstrap interval "
        "over images and the flags of `bench run` (docs/statistics.md).",
        "",
    ]
    for (dataset, profile), runs in sorted(groups.items()):
        parts += _measured_group(dataset, profile, runs, link, table)
    return parts


def _measured_group(
    dataset: str, profile: str, runs: list[TrackedRun], link: Callable[[TrackedRun], str], table
) -> list[str]:
    """One dataset and profile: its newest identity, then each cell run."""
    cells = sorted((r for r in runs if r.kind == "cell"), key=lambda r: (r.method, r.seed or 0))
    if not cells:
        return []
    identities = [r for r in runs if r.kind == "identity" and r.finished]
    keys = metric_keys(cells + identities)
    header = ["Run", "Method", "Seed", "Iterations", "Steps", "Precision", "Images", "Status"]
    header += [MetricKey.parse(k).metric for k in keys]
    gap = gap_metric(cells)
    if gap is not None:
        shown = MetricKey.parse(gap).metric
        header += [f"Δ input {shown} [95% CI]", f"Δ best {shown} [95% CI]", "flags"]
    rows = [_identity_row(identities[-1], keys, gap, link)] if identities else []
    rows += [_cell_row(run, keys, gap, link) for run in cells]
    protocols = ", ".join(sorted({r.protocol for r in cells if r.protocol})) or "–"
    return [f"### {dataset}, {profile} profile (protocol {protocols})", "", table(header, rows), ""]


def _identity_row(
    identity: TrackedRun, keys: list[str], gap: str | None, link: Callable[[TrackedRun], str]
) -> list[str]:
    blank = ["", "", "", ""]  # seed, iterations, steps, precision
    return (
        [
            f"[{identity.run_id[:8]}]({link(identity)})",
            identity_label(identity.tags.get("task")),
            *blank,
        ]
        + [images_scored(identity), identity.status]
        + [format_measured(identity.metrics.get(k)) for k in keys]
        + (["", "", ""] if gap else [])
    )


def _cell_row(
    run: TrackedRun, keys: list[str], gap: str | None, link: Callable[[TrackedRun], str]
) -> list[str]:
    settings = [str(run.seed or 0), str(run.iterations or "?"), str(run.steps or "?")]
    return (
        [f"[{run.run_id[:8]}]({link(run)})", run.method or "?", *settings]
        + [run.tags.get("precision", "fp32"), images_scored(run), run.status]
        + [format_measured(run.metrics.get(k)) for k in keys]
        + (gap_cells(run, gap) if gap else [])
    )


def audit_markdown(store: Store, link: Callable[[TrackedRun], str]) -> list[str]:
    """``## Protocol audit``: for every finished run that logged one, its outputs scored
    under each convention of the task, with the move from the paper's script."""
    from bench.audit import markdown, rows_from_metrics
    from bench.conventions import HEADLINES, base_of

    audited = []
    for run in store.runs:
        if run.kind == "cell" and run.finished and run.protocol:
            rows = rows_from_metrics(base_of(run.protocol), run.metrics)
            if rows:
                audited.append((run, rows))
    if not audited:
        return []
    parts = [
        "## Protocol audit",
        "",
        "Each run's outputs scored again under every convention the literature uses for its "
        "task, beside the paper's script (the first row): the number in brackets is how far "
        "the headline value moves. A gap between two papers smaller than these moves may be "
        "convention, not method. Each row's protocol can be picked with `--protocol` "
        "(docs/protocols.md). The last column, where the run logged it, divides the first "
        "headline's move by the half-width of the 95% interval of the method's gap to the "
        "input: above 1, the convention moves the number more than that interval is wide "
        "(docs/statistics.md).",
        "",
    ]
    audited.sort(key=lambda item: (item[0].dataset or "", item[0].profile or "", item[0].method or "", item[0].seed or 0))  # fmt: skip
    for run, rows in audited:
        title = f"{run.dataset}, {run.method} seed {run.seed or 0}, {run.profile} profile"
        parts += [f"### {title} ([{run.run_id[:8]}]({link(run)}), {images_scored(run)} images)", ""]
        spec = HEADLINES[base_of(run.protocol)][0]
        yardstick = gap_yardstick(run, spec.title, spec.key)
        if yardstick is not None:
            parts += [f"{spec.title}: {yardstick.label}.", ""]
        parts += [markdown(rows, yardstick), ""]
    return parts


def gap_yardstick(run: TrackedRun, title: str, key: str):
    """The interval of the run's gap to the input on headline ``key``, as a
    :class:`bench.audit.Yardstick`; None when the run logged no interval."""
    from bench.audit import Yardstick

    def value(suffix: str) -> float | None:
        return run.metrics.get(
            str(MetricKey(run.protocol, f"{key}_vs_identity_{suffix}", "interval"))
        )

    diff, low, high = value("diff"), value("ci_low"), value("ci_high")
    if diff is None or low is None or high is None:
        return None
    from bench.statistics import format_difference

    label = f"the method's gap to the input, with its 95% interval, is {format_difference(diff, low, high)}"
    return Yardstick(title, label, (high - low) / 2)
