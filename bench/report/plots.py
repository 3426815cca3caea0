"""The report's figures as PNG: quality against sampling steps, quality against latency,
training loss curves. Drawn on matplotlib ``Figure`` objects (Agg, no pyplot state), with
the series sorted and the PNG's "Software" text chunk dropped, so the same runs give the
same bytes.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
from collections.abc import Callable
from pathlib import Path

from bench.conventions import HEADLINES, SET_METRICS, MetricKey, base_of
from bench.files import atomic_write
from bench.report.runs import TrackedRun

LATENCY = "profile/latency_image_s"
LOSS = "train/loss"


def headline(protocol: str) -> tuple[str, str, bool]:
    """(metric key, axis label, lower is better) of a protocol's headline metric: the first
    of its headlines in bench/conventions.py (PSNR for restoration), else its first set
    metric (FID for generation)."""
    spec = (HEADLINES.get(base_of(protocol)) or SET_METRICS)[0]
    label = f"{spec.title} ({spec.unit})" if spec.unit else spec.title
    return str(MetricKey(protocol, spec.key)), label, spec.lower_is_better


def primary(run: TrackedRun) -> str | None:
    """The panel of ``run``'s headline metric (its protocol), if logged."""
    if run.protocol and headline(run.protocol)[0] in run.metrics:
        return run.protocol
    return None


def _series_label(run: TrackedRun) -> str:
    options = ",".join(f"{k}={v}" for k, v in sorted(run.options.items()) if k != "loss")
    return f"{run.method} {run.dataset} ({run.profile}{'; ' + options if options else ''})"


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def _figure(panels: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4 * panels, 4.8), layout="constrained")
    return figure, figure.subplots(1, panels, squeeze=False)[0]


def _mean(runs: list[TrackedRun], key: str) -> float:
    return statistics.fmean(r.metrics[key] for r in runs)


def _panels(runs: list[TrackedRun], needs: Callable[[TrackedRun], bool]) -> dict[str, list]:
    found: dict[str, list[TrackedRun]] = {}
    for run in runs:
        name = primary(run)
        if name and needs(run):
            found.setdefault(name, []).append(run)
    return dict(sorted(found.items()))


def steps_plot(runs: list[TrackedRun], path: Path) -> bool:
    """Mean quality over seeds against sampling steps, one line per method setting."""
    panels = _panels(runs, lambda r: r.steps is not None)
    if not panels:
        return False
    figure, axes = _figure(len(panels))
    for axis, (name, members) in zip(axes, panels.items(), strict=True):
        key, label, lower = headline(name)
        series: dict[str, dict[int, list[TrackedRun]]] = {}
        for run in members:
            series.setdefault(_series_label(run), {}).setdefault(run.steps, []).append(run)
        for title, points in sorted(series.items()):
            steps = sorted(points)
            axis.plot(steps, [_mean(points[s], key) for s in steps], marker="o", label=title)
        axis.set_xscale("log")
        axis.set_xlabel("sampling steps")
        axis.set_ylabel(f"{label} ({'lower' if lower else 'higher'} is better)")
        axis.set_title(f"{name}: quality against sampling steps")
        axis.legend(fontsize="small")
    _save(figure, path)
    return True


def latency_plot(runs: list[TrackedRun], path: Path) -> bool:
    """Mean quality against measured latency per image, one point per method and steps."""
    panels = _panels(runs, lambda r: LATENCY in r.metrics)
    if not panels:
        return False
    figure, axes = _figure(len(panels))
    for axis, (name, members) in zip(axes, panels.items(), strict=True):
        key, label, lower = headline(name)
        points: dict[tuple[str, int | None], list[TrackedRun]] = {}
        for run in members:
            points.setdefault((_series_label(run), run.steps), []).append(run)
        for (title, steps), group in sorted(
            points.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)
        ):
            axis.scatter(
                [_mean(group, LATENCY)], [_mean(group, key)], label=f"{title}, {steps} steps"
            )
        hardware = ", ".join(sorted({r.hardware for r in members}))
        axis.set_xscale("log")
        axis.set_xlabel(f"latency per image (s) on {hardware}")
        axis.set_ylabel(f"{label} ({'lower' if lower else 'higher'} is better)")
        axis.set_title(f"{name}: quality against latency")
        axis.legend(fontsize="small")
    _save(figure, path)
    return True


def curve_key(run: TrackedRun) -> str | None:
    """The learning-curve metric of ``run``: ``curve/<protocol>/<first headline metric>``
    when it was run with --eval-every, else None."""
    if not run.protocol or not int(run.field("eval_every") or 0):
        return None
    key = headline(run.protocol)[0]
    return str(dataclasses.replace(MetricKey.parse(key), stream="curve"))


def learning_plot(
    curves: dict[tuple[str, str], dict[str, list[tuple[int, float]]]],
    floors: dict[tuple[str, str], float],
    path: Path,
) -> bool:
    """The headline metric of the EMA against training iterations: one panel per (dataset,
    metric key), one line per run, the identity baseline (the floor) dashed."""
    panels = {k: v for k, v in sorted(curves.items()) if any(v.values())}
    if not panels:
        return False
    figure, axes = _figure(len(panels))
    for axis, ((dataset, key), lines) in zip(axes, panels.items(), strict=True):
        for label, points in sorted(lines.items()):
            axis.plot([s for s, _ in points], [v for _, v in points], marker=".", label=label)
        if (dataset, key) in floors:
            axis.axhline(
                floors[(dataset, key)], color="grey", linestyle="--", label="identity (input)"
            )
        axis.set_xlabel("training iteration")
        axis.set_ylabel(MetricKey.parse(key).metric)
        axis.set_title(f"{dataset}: learning curve (EMA weights)")
        axis.legend(fontsize="small")
    _save(figure, path)
    return True


def loss_plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> bool:
    """``train/loss`` against iteration, one line per run (``curves``: label -> history)."""
    curves = {label: points for label, points in curves.items() if points}
    if not curves:
        return False
    figure, axes = _figure(1)
    axis = axes[0]
    for label, points in sorted(curves.items()):
        axis.plot([s for s, _ in points], [v for _, v in points], label=label, linewidth=1)
    axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_ylabel("training loss (train/loss)")
    axis.set_title("training loss")
    axis.legend(fontsize="small")
    _save(figure, path)
    return True
