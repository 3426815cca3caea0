"""New SQLite stores from the cached MLflow schema equal stores MLflow migrates itself."""

import sqlite3

from mlflow.tracking import MlflowClient

from bench import store_schema
from bench.tracking import Tracker


def schema(database) -> tuple[set[str], list[tuple]]:
    connection = sqlite3.connect(database)
    try:
        sql = {row[0] for row in connection.execute("SELECT sql FROM sqlite_master") if row[0]}
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    return sql, revision


def test_a_cached_store_has_the_migrated_schema_and_mlflow_opens_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    migrated = tmp_path / "first" / "mlflow.db"
    assert not store_schema.create_from_cache(migrated)  # no cache yet: MLflow migrates
    Tracker(f"sqlite:///{migrated}", "bench")
    dump = store_schema.schema_file().read_text()
    inserts = {
        line.split()[2].strip('"') for line in dump.splitlines() if line.startswith("INSERT")
    }
    assert "alembic_version" in inserts and "experiments" not in inserts

    copied = tmp_path / "second" / "mlflow.db"
    tracker = Tracker(f"sqlite:///{copied}", "bench")
    assert schema(copied) == schema(migrated)
    run = tracker.start("x", {})
    tracker.log_metrics(run, {"a": 1.0})
    tracker.end(run, "FINISHED")
    client = MlflowClient(f"sqlite:///{copied}")
    names = {e.name: e for e in client.search_experiments()}
    assert set(names) == {"Default", "bench"}  # MLflow added its default experiment itself
    assert names["bench"].artifact_location == (copied.parent / "artifacts").as_uri()
    assert client.get_run(run).data.metrics == {"a": 1.0}
    assert sorted(p.name for p in copied.parent.iterdir()) == ["mlflow.db"]  # no leftovers


def test_an_existing_store_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    store_schema.schema_file().parent.mkdir(parents=True)
    store_schema.schema_file().write_text("CREATE TABLE fresh (x);\n")
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).execute("CREATE TABLE kept (x)").connection.close()
    assert store_schema.create_from_cache(database)  # raced: another process made it first
    assert schema_tables(database) == {"kept"}


def schema_tables(database) -> set[str]:
    connection = sqlite3.connect(database)
    try:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    finally:
        connection.close()
