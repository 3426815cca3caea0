"""New SQLite tracking stores from a cached copy of MLflow's schema.

MLflow creates a SQLite store by running every one of its schema migrations (about 60
alembic revisions, each rewriting tables): seconds of work for an empty database, paid
by every new results folder and every test that tracks. The first store MLflow creates
on a machine is dumped (schema and the rows MLflow seeds, without experiments) into
``<cache>/mlflow-<version>-schema.sql``; later new stores of the same MLflow version are
created from that dump in milliseconds. MLflow still opens them itself: it finds its
newest revision recorded, so it migrates nothing, and it adds the default experiment
with the artifact location it would have given it.

The cache folder is ``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/bench``, else
``~/.cache/bench``; deleting it only costs the next new store its migrations.
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


def schema_file() -> Path:
    from mlflow.version import VERSION

    return cache_dir() / f"mlflow-{VERSION}-schema.sql"


def dump_schema(database: Path) -> str:
    """The SQL that rebuilds ``database`` without its experiments."""
    connection = sqlite3.connect(database)
    try:
        lines = [line for line in connection.iterdump() if not _STORE_ROWS.match(line)]
    finally:
        connection.close()
    return "\n".join(lines) + "\n"


def create_from_cache(database: Path) -> bool:
    """Create the store ``database`` (which must not exist) from the cached schema; False
    when there is no cache for the installed MLflow, so MLflow creates it as usual."""
    schema = schema_file()
    if not schema.is_file():
        return False
    partial = database.with_name(f"{database.name}.{os.getpid()}.creating")
    connection = sqlite3.connect(partial)
    try:
        connection.executescript(schema.read_text())
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
    schema = schema_file()
    if schema.is_file():
        return
    try:
        schema.parent.mkdir(parents=True, exist_ok=True)
        partial = schema.with_name(schema.name + f".{os.getpid()}")
        partial.write_text(dump_schema(database))
        partial.replace(schema)
    except OSError:  # a read-only home only loses the speed-up
        return
