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
