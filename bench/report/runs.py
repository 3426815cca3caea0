"""Tracked runs read back from MLflow, tolerant of runs an older harness wrote.

Every field is optional: a run without a tag, param or metric is still read, and the
report says which field kept it out of a table instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, choices
from bench.tracking import FINISHED, mlflow_client

#: where a link points when the store is a local file: `bench ui`'s default address
UI_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    experiment_id: str
    status: str
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]
    hardware: str = "unknown"

    @property
    def parent_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")

    @property
    def kind(self) -> str:
        """grid, cell or identity; inferred for runs that predate the ``run_kind`` tag."""
        if "run_kind" in self.tags:
            return self.tags["run_kind"]
        if self.method == "identity":
            return "identity"
        return "cell" if self.method else "grid"

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def field(self, name: str) -> str | None:
        """A cell setting: the ``cell.<name>`` param, else a tag of that name."""
        return self.params.get(f"cell.{name}", self.tags.get(name))

    @property
    def method(self) -> str | None:
        return self.field("method")

    @property
    def dataset(self) -> str | None:
        return self.field("dataset")

    @property
    def profile(self) -> str | None:
        return self.field("profile")

    @property
    def protocol(self) -> str | None:
        return self.field("protocol")

    @property
    def seed(self) -> int | None:
        return _int(self.field("seed"))

    @property
    def steps(self) -> int | None:
        return _int(self.params.get("cell.steps"))

    @property
    def iterations(self) -> int | None:
        return _int(self.params.get("cell.iterations"))

    @property
    def image_size(self) -> int | None:
        return _int(self.params.get("cell.image_size"))

    @property
    def unet_dim(self) -> int | None:
        return _int(self.params.get("cell.unet_dim"))

    @property
    def options(self) -> dict[str, str]:
        prefix = "cell.options."
        return {k[len(prefix) :]: v for k, v in self.params.items() if k.startswith(prefix)}

    def unavailable(self, metric: str) -> str | None:
        return self.tags.get(f"unavailable.{metric}")


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(float(text))
    except ValueError:
        return None


def same_value(logged: str, wanted: Any) -> bool:
    """A param (always text) against a planned value: numbers compare as numbers."""
    if isinstance(wanted, bool):
        return logged.lower() == str(wanted).lower()
    if isinstance(wanted, int | float):
        try:
            return float(logged) == float(wanted)
        except ValueError:
            return False
    return logged == str(wanted)


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page: on the tracking server, or in `bench ui` for a local store."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else UI_URL
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass
class Store:
    """One experiment of one tracking store, read once."""

    uri: str
    experiment: str
    experiment_id: str | None
    runs: list[TrackedRun] = field(default_factory=list)

    def url(self, run: TrackedRun) -> str:
        return run_url(self.uri, run.experiment_id, run.run_id)


def unreachable(uri: str, error: Exception) -> BenchError:
    return BenchError(
        f"tracking store {uri} cannot be read ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:200] if str(error) else ''}); check tracking.uri in "
        "bench.toml, --tracking-uri or MLFLOW_TRACKING_URI"
    )


def read_store(uri: str, experiment: str) -> Store:
    """Every active run of ``experiment``; a missing store or experiment is a BenchError
    naming what exists (a local store is never created by reading it)."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise BenchError(
                f"no tracking store at {path}: nothing has been run with this config; "
                "run `bench run` first, or pass --config/--tracking-uri for another store"
            )
    client = mlflow_client(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = [e.name for e in client.search_experiments()]
            raise BenchError(
                f"experiment '{experiment}' does not exist in {uri}; existing experiments: "
                f"{choices(names)}; pass --experiment NAME"
            )
        raw = []
        token = None
        while True:
            page = client.search_runs([found.experiment_id], max_results=1000, page_token=token)
            raw += list(page)
            token = page.token
            if not token:
                break
    except BenchError:
        raise
    except Exception as error:  # MLflow raises many types; all mean the store is unusable
        raise unreachable(uri, error) from None
    hardware = _HardwareLookup(client)
    runs = [
        TrackedRun(
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            status=run.info.status,
            tags=dict(run.data.tags),
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
        )
        for run in raw
    ]
    runs = [
        TrackedRun(**{**vars(r), "hardware": hardware(r)}) if r.kind != "grid" else r for r in runs
    ]
    runs.sort(key=lambda r: r.run_id)
    return Store(uri, experiment, found.experiment_id, runs)


class _HardwareLookup:
    """The ``hardware`` tag, else the device named in the parent's environment.json."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cache: dict[str, str | None] = {}

    def __call__(self, run: TrackedRun) -> str:
        if run.tags.get("hardware"):
            return run.tags["hardware"]
        parent = run.parent_id
        if parent and parent not in self.cache:
            self.cache[parent] = self._from_environment(parent, run.tags.get("device", ""))
        return (parent and self.cache[parent]) or "unknown"

    def _from_environment(self, parent: str, device: str) -> str | None:
        try:
            folder = self.client.download_artifacts(parent, "environment.json")
            env = json.loads(Path(folder).read_text())
        except Exception:  # an older run without the artifact: hardware stays unknown
            return None
        gpus = [gpu.get("name") for gpu in env.get("gpus") or [] if isinstance(gpu, dict)]
        if device != "cpu" and gpus:
            return gpus[0]
        return env.get("cpu") or None


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of a logged curve, sorted by step; empty if never logged."""
    try:
        history = mlflow_client(uri).get_metric_history(run_id, key)
    except Exception as error:
        raise unreachable(uri, error) from None
    return sorted((m.step, m.value) for m in history)
