"""A real single-node Slurm cluster and MLflow server (PostgreSQL), started once per session
by scripts/local-cluster, for the tests marked ``cluster``. They are deselected unless asked
for (``-m cluster``, as CI does); asked for, a cluster that does not start is an error."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local-cluster"


@pytest.fixture(scope="session")
def cluster():
    """The environment to run bench in: SLURM_CONF and the tracking server's address."""
    # not under pytest's private temporary folder: the postgres user writes the database here
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-", dir="/tmp"))
    folder.chmod(0o755)
    env = {**os.environ, "BENCH_CLUSTER_DIR": str(folder), "BENCH_PYTHON": sys.executable}
    started = subprocess.run([SCRIPT, "up"], env=env, capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        pytest.fail(f"the local cluster did not start:\n{started.stderr}\n{started.stdout}")
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in started.stdout.splitlines()
        if line.startswith("export ")
    )
    yield {**env, **exports}
    subprocess.run([SCRIPT, "down"], env=env, capture_output=True, text=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)
