"""The MLflow wrapper: explicit store and artifact location, runs, and an unreachable store."""

import pytest

from bench.errors import BenchError
from bench.tracking import FAILED, FINISHED, Tracker, flatten


def test_flatten_nested_tables():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": "x",
    }


def test_parent_and_child_runs_with_params_metrics_tags_and_artifacts(tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    tracker = Tracker(uri, "exp")
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (tmp_path / "store" / "artifacts").as_uri()

    parent = tracker.start("grid", {"profile": "smoke"})
    child = tracker.start("cell", {"seed": 0}, parent=parent)
    tracker.log_params(child, {"cell": {"method": "rddm", "mults": [1, 2]}})
    tracker.log_metrics(child, {"istd/psnr_all": 30.5, "bad": float("nan")})
    tracker.log_history(child, "train/loss", [(1, 0.5), (2, 0.25)])
    tracker.log_json(child, {"a": 1}, "profile.json")
    tracker.end(child, FINISHED)
    tracker.end(parent, FAILED)

    run = tracker.client.get_run(child)
    assert run.data.params == {"cell.method": "rddm", "cell.mults": "1,2"}
    assert run.data.metrics["istd/psnr_all"] == 30.5
    assert "bad" not in run.data.metrics  # a non-finite value is not logged as a number
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.info.status == FINISHED
    assert tracker.client.get_run(parent).info.status == FAILED
    history = tracker.client.get_metric_history(child, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
    assert [a.path for a in tracker.client.list_artifacts(child)] == ["profile.json"]

    again = Tracker(uri, "exp")  # reuses the experiment
    assert again.experiment_id == tracker.experiment_id


def test_unreachable_store_is_a_clear_error():
    with pytest.raises(BenchError, match="tracking store http://127.0.0.1:9 is unreachable"):
        Tracker("http://127.0.0.1:9", "exp")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(store: str, port: int):
    """A real `mlflow server` on a SQLite store, answering once this returns."""
    import subprocess
    import sys
    import time
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise AssertionError("mlflow server did not start")


def _stop(server) -> None:
    import os
    import signal

    os.killpg(server.pid, signal.SIGKILL)  # the server and its workers, as a crash would
    server.wait()


def test_a_server_restart_mid_run_loses_nothing(tmp_path, capsys):
    """The server goes away while a cell logs and comes back 4 s later: every call retries
    with backoff, says so once per retry, and every value is stored exactly once. An answer
    that is not an outage (a run that does not exist) fails at once."""
    import threading
    import time

    from mlflow.exceptions import MlflowException

    store, port = f"sqlite:///{tmp_path / 'server.db'}", _free_port()
    server = _serve(store, port)
    uri = f"http://127.0.0.1:{port}"
    tracker = Tracker(uri, "restarts", patience=120)
    run_id = tracker.start("cell")
    tracker.log_history(run_id, "train/loss", [(s, 1 / (s + 1)) for s in range(50)])
    _stop(server)
    restarted = {}

    def restart() -> None:
        time.sleep(4)
        restarted["server"] = _serve(store, port)

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        tracker.log_history(run_id, "train/loss", [(s, 1 / (s + 1)) for s in range(50, 100)])
        second = tracker.start("another cell")  # created once, although retried
        tracker.log_metrics(run_id, {"istd/psnr_all": 30.5})
        tracker.end(run_id, FINISHED)
        thread.join()
        said = capsys.readouterr().err
        assert f"tracking store {uri} did not answer" in said and "retrying in 1 s" in said
        history = tracker.client.get_metric_history(run_id, "train/loss")
        assert sorted(m.step for m in history) == list(range(100))
        assert tracker.client.get_run(run_id).info.status == FINISHED
        runs = tracker.client.search_runs([tracker.experiment_id])
        assert sorted(r.info.run_name for r in runs) == ["another cell", "cell"]
        assert second in {r.info.run_id for r in runs}
        started = time.monotonic()
        with pytest.raises(MlflowException):
            tracker.log_metrics("0" * 32, {"x": 1.0})
        assert time.monotonic() - started < 5 and "retrying" not in capsys.readouterr().err
    finally:
        thread.join()
        if "server" in restarted:
            _stop(restarted["server"])


def test_a_worker_waits_for_a_store_that_answered_before(tmp_path):
    """Opening fails at once, unless ``wait`` (a grid's cell, whose store answered the grid):
    then it waits for the server to come up."""
    import threading

    store, port = f"sqlite:///{tmp_path / 'server.db'}", _free_port()
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(BenchError, match="is unreachable"):
        Tracker(uri, "late")
    started = {}
    thread = threading.Thread(target=lambda: started.update(server=_serve(store, port)))
    thread.start()
    try:
        tracker = Tracker(uri, "late", patience=120, wait=True)
        assert tracker.client.get_experiment(tracker.experiment_id).name == "late"
    finally:
        thread.join()
        _stop(started["server"])


def test_a_database_without_its_driver_names_the_module(monkeypatch):
    """A postgresql:// store whose driver is not installed: the module to install, not an
    'unreachable' that sends the user looking at the network."""
    import builtins

    real_import = builtins.__import__

    def no_driver(name, *args, **kwargs):
        if name.split(".")[0] in ("psycopg", "psycopg2"):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_driver)
    with pytest.raises(BenchError, match="needs the Python module 'psycopg"):
        Tracker("postgresql://user@127.0.0.1:9/mlflow", "exp")
