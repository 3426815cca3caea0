"""New SQLite stores from the schema dump equal stores MLflow migrates itself."""

import sqlite3

import pytest
from mlflow.tracking import MlflowClient
from mlflow.version import VERSION

from bench import store_schema
from bench.tracking import Tracker


def clauses(statements) -> set[frozenset[str]]:
    """Each statement as its set of lines: MLflow's migrations list a table's constraints
    in no fixed order, so two migrated stores differ in order only."""
    return {
        frozenset(line.strip().rstrip(",") for line in statement.splitlines())
        for statement in statements
    }


def schema(database) -> tuple[set[frozenset[str]], list[tuple]]:
    connection = sqlite3.connect(database)
    try:
        sql = [row[0] for row in connection.execute("SELECT sql FROM sqlite_master") if row[0]]
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    return clauses(sql), revision


@pytest.fixture
def migrated(tmp_path_factory, monkeypatch):
    """A store MLflow created and migrated itself (no dump anywhere), and the cache it left."""
    folder = tmp_path_factory.mktemp("migrated")
    monkeypatch.setattr(store_schema, "PACKAGED", folder / "absent.sql")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(folder / "cache"))
    database = folder / "mlflow.db"
    assert not store_schema.create_from_dump(database)
    Tracker(f"sqlite:///{database}", "bench")
    cached = store_schema.schema_file().read_text()
    monkeypatch.undo()
    return database, cached


def test_the_packaged_dump_is_what_the_pinned_mlflow_migrates_to(migrated):
    _, cached = migrated
    header, body = store_schema.PACKAGED.read_text().split("\n", 1)
    assert f"MLflow {VERSION} " in header, (
        f"bench/mlflow_schema.sql is not for the installed MLflow {VERSION}: pin it in "
        "constraints-cpu.txt or run `python -m bench.store_schema`"
    )
    assert clauses(body.split(";\n")) == clauses(cached.split(";\n"))
    inserts = {
        line.split()[2].strip('"') for line in body.splitlines() if line.startswith("INSERT")
    }
    assert "alembic_version" in inserts and "experiments" not in inserts


def test_a_store_from_the_dump_equals_a_migrated_one_and_mlflow_opens_it(migrated, tmp_path):
    database, _ = migrated
    copied = tmp_path / "store" / "mlflow.db"
    tracker = Tracker(f"sqlite:///{copied}", "bench")
    assert schema(copied) == schema(database)
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
    monkeypatch.setattr(store_schema, "PACKAGED", tmp_path / "absent.sql")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    store_schema.schema_file().parent.mkdir(parents=True)
    store_schema.schema_file().write_text("CREATE TABLE fresh (x);\n")
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).execute("CREATE TABLE kept (x)").connection.close()
    assert store_schema.create_from_dump(database)  # raced: another process made it first
    connection = sqlite3.connect(database)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert tables == {"kept"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "mlflow.db"]
