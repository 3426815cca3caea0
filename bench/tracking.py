"""MLflow tracking: one parent run per invocation, one child run per cell.

Everything goes through an explicit :class:`~mlflow.tracking.MlflowClient` with an
explicit tracking URI and artifact location (MLflow 3 otherwise picks ./mlflow.db and
artifact folders relative to whatever the working directory was; docs/environment.md §6).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import store_schema
from bench.errors import BenchError

#: MLflow's own limit on a param value's length.
_PARAM_LIMIT = 6000

EXPERIMENT_KIND, TRAINING = "mlflow.experimentKind", "custom_model_development"

# Run statuses (mlflow.entities.RunStatus names).
FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"

#: MLflow's error codes for a server that is down, restarting or overloaded; any other code
#: (a bad value, a missing run) is an answer, and retrying cannot change it
_TRANSIENT_CODES = frozenset(
    {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "ENDPOINT_NOT_FOUND"}
)

#: how long a tracker waits for its store to come back before a call fails (tracking.retry_minutes)
DEFAULT_PATIENCE_S = 600.0


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite store: <folder of mlflow.db>/artifacts."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None  # a server decides (--default-artifact-root)


_OPEN: dict[tuple[str, str], Tracker] = {}


def mlflow_client(uri: str) -> Any:
    """The one way bench opens a tracking store: an unreachable server fails fast instead of
    retrying for minutes, artifact downloads draw no progress bars over bench's output, and
    MLflow prints no "View run" links on standard output, which holds only bench's results
    (the JSON document with --json); bench prints its own links."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


class Tracker:
    """A thin, explicit wrapper over MlflowClient for one experiment."""

    def __init__(
        self, uri: str, experiment: str, patience: float = DEFAULT_PATIENCE_S, wait: bool = False
    ) -> None:
        """Open ``experiment`` in the store at ``uri`` (creating it). An unreachable store
        fails at once, unless ``wait``: a worker of a grid whose store answered before
        waits for it like any other call. ``patience``: seconds each call waits for a store
        that stopped answering."""
        self.uri, self.experiment, self.patience = uri, experiment, patience
        migrated_here = None  # a new store MLflow creates and migrates itself
        if uri.startswith("sqlite:///"):
            database = Path(uri.removeprefix("sqlite:///"))
            database.parent.mkdir(parents=True, exist_ok=True)
            if not database.exists() and not store_schema.create_from_dump(database):
                migrated_here = database
        try:
            raw = mlflow_client(uri)
            # every call retries with backoff, the opening itself only when asked (a mistyped
            # address is not worth minutes of retries)
            self.client = _Patient(raw, self)
            found = (self.client if wait else raw).get_experiment_by_name(experiment)
        except ModuleNotFoundError as error:  # a database URI whose driver is missing
            raise BenchError(
                f"tracking store {uri} needs the Python module '{error.name}', which is not "
                "installed; `pip install -e '.[cluster]'` in bench's checkout installs psycopg "
                "for postgresql:// addresses"
            ) from None
        except Exception as error:  # MLflow raises many types; all mean the same thing here
            raise BenchError(
                f"tracking store {uri} is unreachable ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200]}); check tracking.uri in bench.toml, "
                "--tracking-uri or MLFLOW_TRACKING_URI"
            ) from None
        if migrated_here is not None:
            store_schema.remember(migrated_here)
        self.experiment_id = found.experiment_id if found is not None else self._create()
        if found is not None and EXPERIMENT_KIND not in found.tags:
            self._mark_training()

    def _mark_training(self) -> None:
        """Tag an experiment made elsewhere as model training. Processes opening it at once
        all try; the database refuses every insert but the first, which is the same tag."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND, TRAINING)
        except MlflowException:
            if EXPERIMENT_KIND not in self.client.get_experiment(self.experiment_id).tags:
                raise

    def _create(self) -> str:
        """Create the experiment; when another process created it first (cells starting at
        once against one server), use theirs."""
        from mlflow.exceptions import MlflowException

        try:
            # tagged in the same insert (model training, so MLflow 3's UI opens on runs
            # rather than GenAI traces): a separate tag call races other processes
            return self.client.create_experiment(
                self.experiment,
                artifact_location=artifact_root(self.uri),
                tags={EXPERIMENT_KIND: TRAINING},
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(self.experiment).experiment_id

    @classmethod
    def open(
        cls, uri: str, experiment: str, patience: float = DEFAULT_PATIENCE_S, wait: bool = False
    ) -> Tracker:
        """One tracker per store and experiment per process (opening a store costs seconds);
        ``patience`` and ``wait`` as for the constructor."""
        key = (uri, experiment)
        if key not in _OPEN:
            _OPEN[key] = cls(uri, experiment, patience, wait)
        _OPEN[key].patience = patience
        return _OPEN[key]

    def retrying(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``, again after 1, 2, 4 ... 30 s while the store is unreachable, for up to
        ``patience`` seconds in all. Every value bench logs carries its own timestamp and
        MLflow drops exact repeats, so a batch sent twice is stored once."""
        if not _remote(self.uri):
            return call()  # a local file: an error is an answer, not an outage
        waited, delay = 0.0, 1.0
        while True:
            try:
                return call()
            except Exception as error:
                if not _transient(error) or waited >= self.patience:
                    raise
                from bench import console

                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                console.warn(
                    f"tracking store {self.uri} did not answer {what} ({reason}); retrying in "
                    f"{delay:.0f} s (gives up after {self.patience / 60:g} min: "
                    "tracking.retry_minutes)"
                )
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 30.0)

    def start(
        self, name: str, tags: Mapping[str, Any] | None = None, parent: str | None = None
    ) -> str:
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        # who holds the run open: a later run can tell a dead one from a live one
        all_tags |= {"bench.host": socket.gethostname(), "bench.pid": str(os.getpid())}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        # a retried create must not make a second run when the first reached the store
        all_tags["bench.start_token"] = token = uuid.uuid4().hex
        attempts = []

        def create() -> str:
            if attempts:
                found = self.client.raw.search_runs(
                    [self.experiment_id], f"tags.`bench.start_token` = '{token}'"
                )
                if found:
                    return found[0].info.run_id
            attempts.append(1)
            created = self.client.raw.create_run(self.experiment_id, run_name=name, tags=all_tags)
            return created.info.run_id

        return self.retrying(create, "the start of a run")

    def settle_stale(self) -> list[str]:
        """Close as FAILED every RUNNING run of the experiment whose process on this host is
        gone (killed, crashed, lost power); return their names. Runs held by processes on
        other hosts, or still alive, are left alone."""
        from mlflow.entities import ViewType

        host = socket.gethostname()
        settled = []
        runs = self.client.search_runs(
            [self.experiment_id], "attributes.status = 'RUNNING'", ViewType.ACTIVE_ONLY, 1000
        )
        for run in runs:
            tags = run.data.tags
            pid = tags.get("bench.pid", "")
            if tags.get("bench.host") != host or not pid.isdigit() or _alive(int(pid)):
                continue
            reason = f"process {pid} on {host} ended without closing this run (killed or crashed)"
            self.client.set_tag(run.info.run_id, "error", reason)
            self.client.set_terminated(run.info.run_id, FAILED)
            settled.append(run.info.run_name)
        return settled

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_text(v)) for k, v in sorted(flatten(params).items())]
        for start in range(0, len(items), 100):  # MLflow's batch limit for params
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log finite values; a non-finite value is an error in the caller, never silently 0."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step)
            for k, v in sorted(metrics.items())
            if v is not None and math.isfinite(float(v))
        ]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start : start + 1000])

    def log_history(self, run_id: str, key: str, values: list[tuple[int, float]]) -> None:
        """A curve (loss per iteration) as one metric with steps."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(v), now, step) for step, v in values if math.isfinite(v)]
        for start in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[start : start + 1000])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)[:_PARAM_LIMIT]) for k, v in sorted(tags.items())]
        self.client.log_batch(run_id, tags=items)

    def log_file(self, run_id: str, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    def read_csv(self, run_id: str, name: str) -> Any:
        """A CSV artifact of a run as a DataFrame, fetched into a temporary folder that is
        removed after reading (a server's artifacts may live on another machine)."""
        import tempfile

        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="bench-artifact-") as folder:
            return pd.read_csv(self.client.download_artifacts(run_id, name, folder))

    def log_text(self, run_id: str, text: str, name: str) -> None:
        self.client.log_text(run_id, text, name)

    def log_json(self, run_id: str, data: Any, name: str) -> None:
        self.log_text(run_id, json.dumps(data, indent=2, sort_keys=True, default=str), name)

    def log_dataset(
        self, run_id: str, name: str, fingerprint: str, folder: Path, context: str
    ) -> None:
        """The run's dataset as an MLflow dataset input (the UI's Datasets column): its name,
        its lock fingerprint as the digest (MLflow keeps 36 characters; the whole one is in
        the source) and ``context`` ("training", "evaluation")."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        source = json.dumps({"folder": str(folder), "fingerprint": fingerprint})
        dataset = Dataset(name=name, digest=fingerprint[:36], source_type="local", source=source)
        tags = [InputTag("mlflow.data.context", context)]
        try:
            self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags)])
        except Exception:
            # cells running side by side insert the same dataset row at once: the loser of
            # that race finds the row there on a second try
            time.sleep(0.5)
            try:
                self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags)])
            except Exception as error:  # the dataset input is a convenience of the UI's
                from bench import console

                console.warn(f"run {run_id}: dataset input not logged ({type(error).__name__})")

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)


class _Patient:
    """An MlflowClient whose every call goes through :meth:`Tracker.retrying`; ``raw`` is the
    client itself."""

    def __init__(self, client: Any, tracker: Tracker) -> None:
        self.raw, self._tracker = client, tracker

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.raw, name)
        if not callable(method):
            return method

        def patient(*args: Any, **kwargs: Any) -> Any:
            return self._tracker.retrying(lambda: method(*args, **kwargs), name)

        return patient


def _remote(uri: str) -> bool:
    """A store reached over a network (a tracking server or a database server)."""
    return not uri.startswith(("sqlite:", "file:", "/")) and "://" in uri


def _transient(error: Exception) -> bool:
    """An outage rather than an answer: the connection failed, timed out, or the server said
    it cannot serve now."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code in _TRANSIENT_CODES
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    kind = type(error)
    # requests' and urllib3's connection errors; a database server's OperationalError
    return (
        kind.__module__.startswith(("requests", "urllib3")) or kind.__name__ == "OperationalError"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _param_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    return str(value)[:_PARAM_LIMIT]
