"""The report's first section: per dataset, each method's headline numbers with their 95%
intervals, its gap to the input, and its outputs beside the input and the ground truth.

A reader learns here what was measured and whether it beat the input; the paper tables,
every metric and the protocol audit follow. Only finished runs are summarised.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping

from bench.conventions import MetricKey, identity_label
from bench.report.common import by_seed, settings_key
from bench.report.measured import format_measured, gap_cells, gap_metric, images_scored, metric_keys
from bench.report.runs import Store, TrackedRun

#: headline columns in the summary; the rest are in "Measured runs"
SUMMARY_METRICS = 3

Group = tuple[str, str]  # (dataset, profile)


def measured_interval(runs: list[TrackedRun], metric: str) -> tuple[float, float] | None:
    """The interval of a measured cell: over images for one run; over seeds and images when it
    averages several runs of one grid (whose runs log that grid's seed interval); None when
    not logged."""
    name = MetricKey.parse(metric)
    if name is None or name.stream != "result":
        return None

    def key(suffix: str) -> str:
        return str(MetricKey(name.protocol, f"{name.metric}_{suffix}", "interval"))

    if len(runs) == 1:
        low, high = key("ci_low"), key("ci_high")
        values = runs[0].metrics
        return (values[low], values[high]) if low in values and high in values else None
    # the seed interval of a grid that ran exactly these seeds (one of its runs says so)
    for run in runs:
        values = run.metrics
        if values.get(key("seeds_n")) == len(runs) and key("seeds_ci_low") in values:
            return values[key("seeds_ci_low")], values[key("seeds_ci_high")]
    return None


def summary_groups(store: Store) -> dict[Group, list[TrackedRun]]:
    """Finished cell runs by (dataset, profile)."""
    groups: dict[Group, list[TrackedRun]] = {}
    for run in store.runs:
        if run.kind == "cell" and run.finished and run.dataset:
            groups.setdefault((run.dataset, run.profile or "?"), []).append(run)
    return dict(sorted(groups.items()))


def method_rows(runs: list[TrackedRun]) -> list[tuple[str, list[TrackedRun]]]:
    """One row per method, settings and scored images (its seeds together), labelled by the
    method, with the iterations and steps where one method ran under several settings, and
    marked when it scored a subset of the test split."""
    settings: dict[tuple, list[TrackedRun]] = {}
    for run in runs:
        subset = run.tags.get("eval_images", "") if run.tags.get("eval_subset") == "yes" else ""
        settings.setdefault((*settings_key(run), subset), []).append(run)
    methods = [key[0] for key in {key[:-1] for key in settings}]
    rows = []
    for key, members in sorted(settings.items(), key=lambda kv: (kv[0][0], -kv[0][4], repr(kv[0]))):
        label = key[0]
        if methods.count(key[0]) > 1:
            label += f" ({key[4]} iterations, {key[3]} steps)"
        if key[-1]:
            label += f" (subset: {key[-1]} images)"
        rows.append((label, by_seed(members)))
    return rows


def _with_interval(runs: list[TrackedRun], key: str) -> str:
    values = [r.metrics[key] for r in runs if key in r.metrics]
    if not values:
        return "–"
    text = format_measured(statistics.fmean(values))
    found = measured_interval(runs, key)
    return f"{text} [{format_measured(found[0])}, {format_measured(found[1])}]" if found else text


def _per_seed(runs: list[TrackedRun], texts: list[str]) -> str:
    if len(runs) == 1:
        return texts[0]
    return "; ".join(f"seed {r.seed}: {t}" for r, t in zip(runs, texts, strict=True) if t)


INTRO = (
    "Each method's headline numbers, the mean over seeds with its 95% interval in brackets: "
    'over the test images for one seed, over seeds and images for several. "Δ input" is '
    "the method minus the degraded input on the first headline, with its 95% paired "
    "bootstrap interval; the flags are those of `bench run` (docs/statistics.md). Every "
    "metric, the protocol audit and the paper tables follow."
)
GRID_CAPTION = (
    "The first test images at their files' size: the input, each method's output (the "
    "lowest seed's run) with its per-image score, and the ground truth."
)


def _heading(dataset: str, profile: str, runs: list[TrackedRun]) -> list[str]:
    protocols = ", ".join(sorted({r.protocol for r in runs if r.protocol})) or "–"
    iterations = ", ".join(map(str, sorted({r.iterations for r in runs if r.iterations})))
    whole = sorted({images_scored(r) for r in runs if r.tags.get("eval_subset") != "yes"} - {""})
    scored = f" on {' and '.join(whole)} test images" if whole else ""
    return [
        f"### {dataset}, {profile} profile",
        "",
        f"Protocol `{protocols}`{scored}; {iterations or '?'} training iterations.",
        "",
    ]


def _method_row(
    label: str, members: list[TrackedRun], keys: list[str], gap: str | None, link
) -> list[str]:
    named = f"[{label}]({link(members[0])})" if len(members) == 1 else label
    seeds = ",".join(str(r.seed if r.seed is not None else "?") for r in members)
    row = [named, seeds] + [_with_interval(members, k) for k in keys]
    if gap is not None:
        cells = [gap_cells(r, gap) for r in members]
        row += [_per_seed(members, [c[0] for c in cells]), _per_seed(members, [c[2] for c in cells])]  # fmt: skip
    return row


def _group_table(
    runs: list[TrackedRun], baseline: TrackedRun | None, link: Callable[[TrackedRun], str], table
) -> str:
    keys = metric_keys(runs)[:SUMMARY_METRICS]
    gap = gap_metric(runs)
    header = ["Method", "Seeds", *(MetricKey.parse(k).metric for k in keys)]
    if gap is not None:
        header += [f"Δ input {MetricKey.parse(gap).metric} [95% CI]", "flags"]
    rows = []
    if baseline is not None:
        values = [format_measured(baseline.metrics.get(k)) for k in keys]
        rows.append(
            [identity_label(baseline.tags.get("task")), "", *values] + (["", ""] if gap else [])
        )
    rows += [_method_row(label, members, keys, gap, link) for label, members in method_rows(runs)]
    return table(header, rows)


def summary_markdown(
    store: Store, link: Callable[[TrackedRun], str], table, grids: Mapping[Group, str]
) -> list[str]:
    """``## Summary``: one short table per (dataset, profile) and its sample grid."""
    groups = summary_groups(store)
    if not groups:
        return []
    parts = ["## Summary", "", INTRO, ""]
    identities = [r for r in store.runs if r.kind == "identity" and r.finished]
    for (dataset, profile), runs in groups.items():
        same = [r for r in identities if r.dataset == dataset and (r.profile or "?") == profile]
        parts += _heading(dataset, profile, runs)
        parts += [_group_table(runs, same[-1] if same else None, link, table), ""]
        if (dataset, profile) in grids:
            image = f"![{dataset} samples, {profile} profile]({grids[(dataset, profile)]})"
            parts += [image, "", GRID_CAPTION, ""]
    return parts
