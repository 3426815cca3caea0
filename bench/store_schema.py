"""New SQLite tracking stores from a dump of MLflow's migrated schema.

MLflow creates a SQLite store by running every one of its schema migrations (about 60
alembic revisions, each rewriting tables): seconds of work for an empty database, paid
by every new results folder and every test that tracks. Instead a new store is created
from a dump of the schema MLflow migrates to (tables, indexes and the rows MLflow seeds,
without experiments) in milliseconds. MLflow still opens it itself: it finds its newest
revision recorded, so it migrates nothing, and it adds the default experiment with the
artifact location it would have given it.

The dump comes from ``bench/mlflow_schema.sql`` when that was written by the installed
MLflow version (constraints-cpu.txt pins it; ``python -m bench.store_schema`` rewrites
it), else from ``<cache>/mlflow-<version>-schema.sql``, which the first store MLflow
migrates on a machine leaves behind. The cache folder is ``$BENCH_CACHE_DIR``, else
``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``. Without either, MLflow migrates.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

#: rows of these tables belong to one store, never to the schema
_STORE_ROWS = re.compile(r'^INSERT INTO "?(experiments|experiment_tags)"? ')


def cache_dir() -> Path:
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bench"


#: the dump shipped with the package; its first line names the MLflow version it is for
PACKAGED = Path(__file__).with_name("mlflow_schema.sql")


def _header(version: str) -> str:
    return f"-- MLflow {version} SQLite schema; rewrite with: python -m bench.store_schema\n"


def schema_file() -> Path:
    """The machine's cached dump for the installed MLflow version."""
    from mlflow.version import VERSION

    return cache_dir() / f"mlflow-{VERSION}-schema.sql"


def schema_text() -> str | None:
    """The dump for the installed MLflow version, or None when there is none yet."""
    from mlflow.version import VERSION

    if PACKAGED.is_file():
        text = PACKAGED.read_text()
        if text.startswith(_header(VERSION)):
            return text
    cached = schema_file()
    return cached.read_text() if cached.is_file() else None


def dump_schema(database: Path) -> str:
    """The SQL that rebuilds ``database`` without its experiments."""
    connection = sqlite3.connect(database)
    try:
        lines = [line for line in connection.iterdump() if not _STORE_ROWS.match(line)]
    finally:
        connection.close()
    return "\n".join(lines) + "\n"


def create_from_dump(database: Path) -> bool:
    """Create the store ``database`` (which must not exist) from the schema dump; False
    when there is no dump for the installed MLflow, so MLflow creates it as usual."""
    schema = schema_text()
    if schema is None:
        return False
    partial = database.with_name(f"{database.name}.{os.getpid()}.creating")
    connection = sqlite3.connect(partial)
    try:
        connection.executescript(schema)
    finally:
        connection.close()
    try:  # a store appears whole or not at all, and never replaces one made meanwhile
        os.link(partial, database)
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return True


def remember(database: Path) -> None:
    """Cache the schema of a store MLflow has just created and migrated itself."""
    if schema_text() is not None:
        return
    schema = schema_file()
    try:
        schema.parent.mkdir(parents=True, exist_ok=True)
        partial = schema.with_name(schema.name + f".{os.getpid()}")
        partial.write_text(dump_schema(database))
        partial.replace(schema)
    except OSError:  # a read-only home only loses the speed-up
        return


def main() -> None:
    """Rewrite bench/mlflow_schema.sql from a store the installed MLflow migrates."""
    import tempfile

    from mlflow.tracking import MlflowClient
    from mlflow.version import VERSION

    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "mlflow.db"
        MlflowClient(f"sqlite:///{database}").search_experiments()
        PACKAGED.write_text(_header(VERSION) + dump_schema(database))
    print(f"wrote {PACKAGED} for MLflow {VERSION}")


if __name__ == "__main__":
    main()
