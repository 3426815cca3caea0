"""Grids fanned out: local worker processes (--jobs), submitit's LocalExecutor through the
Slurm path, and workers that die."""

from __future__ import annotations

from pathlib import Path

import crashing
import pytest
from mlflow.tracking import MlflowClient
from test_run import short_config
from typer.testing import CliRunner

from bench.cli import app
from bench.config import load_config
from bench.runner.cells import expand
from bench.runner.execute import RunContext
from bench.runner.executors import LocalProcesses
from bench.runner.grid import run_grid
from bench.tracking import FAILED, FINISHED

GRID = ["-m", "rddm-sm-res,sr3", "--seeds", "0,1", "--iters", "2", "--steps", "2"]


def cells_by_key(tmp_path: Path) -> tuple[MlflowClient, dict, list]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    (parent,) = [r for r in found if r.data.tags["run_kind"] == "grid"]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    cells = {r.data.tags["cell"]: r for r in children if r.data.tags["run_kind"] == "cell"}
    return parent, cells, found


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("jobs")
    result = CliRunner().invoke(
        app, ["run", "-c", str(short_config(tmp_path)), *GRID, "--jobs", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path


def test_two_local_jobs_run_a_2x2_grid_into_one_store(local_grid):
    parent, cells, _ = cells_by_key(local_grid)
    assert parent.info.status == FINISHED
    assert sorted(cells) == [
        f"synth-shadow/{method}/seed{seed}/smoke"
        for method in ("rddm-sm-res", "sr3")
        for seed in (0, 1)
    ]
    for run in cells.values():
        assert run.info.status == FINISHED
        assert "istd/psnr_all" in run.data.metrics and "profile/params_m" in run.data.metrics
        assert run.data.params["cell.iterations"] == "2"
    psnr = {key: run.data.metrics["istd/psnr_all"] for key, run in cells.items()}
    assert len(set(psnr.values())) == 4  # four different cells, not one result copied


def test_submitit_local_executor_runs_the_same_grid_through_the_slurm_path(tmp_path, local_grid):
    config = short_config(tmp_path)
    slurm = '[slurm]\ncluster = "local"\ntime_minutes = 10\ncpus_per_gpu = 1\n'
    config.write_text(config.read_text() + slurm)
    result = CliRunner().invoke(app, ["run", "-c", str(config), *GRID, "--executor", "slurm"])
    assert result.exit_code == 0, result.output
    parent, cells, _ = cells_by_key(tmp_path)
    assert parent.info.status == FINISHED
    assert len(cells) == 4 and {r.info.status for r in cells.values()} == {FINISHED}
    assert len(list((tmp_path / "results" / "slurm").glob("*/*_submitted.pkl"))) == 4
    # job pickles live there: private to this user
    assert (tmp_path / "results" / "slurm").stat().st_mode & 0o077 == 0
    # the same cells as the local processes computed, to float tolerance
    _, local_cells, _ = cells_by_key(local_grid)
    for key, run in cells.items():
        assert run.data.metrics["istd/psnr_all"] == pytest.approx(
            local_cells[key].data.metrics["istd/psnr_all"], rel=1e-4
        )


def context_for(config) -> RunContext:
    return RunContext(
        tracking_uri=config.tracking_uri(),
        experiment="test",
        parent_run_id=None,
        data_root=config.paths.data_root,
        weights_dir=config.paths.weights_dir,
        results_dir=config.paths.results_dir,
        device="cpu",
    )


def test_workers_that_die_fail_their_cells_and_the_others_finish(tmp_path):
    config = load_config(
        short_config(tmp_path), {"run": {"methods": ["rddm-sm-res"], "seeds": [0, 1, 2]}}
    )
    cells = expand(config, iterations=3, steps=2)
    executor = LocalProcesses(jobs=2, function=crashing.run_cell_or_die)
    result = run_grid(config, cells, context_for(config), executor)

    assert [r.status for r in result.records] == [FINISHED, FAILED, FAILED]
    parent, runs, _ = cells_by_key(tmp_path)
    assert parent.info.status == FAILED
    assert runs[cells[0].key].info.status == FINISHED
    for record in result.records[1:]:
        assert f"exit code {crashing.EXIT_CODE}" in record.error
        run = runs[record.cell.key]
        assert run.info.run_id == record.run_id and run.info.status == FAILED
        assert "worker process died" in run.data.tags["error"]
    # seed 1 died in training: the run its worker began is closed; seed 2 died before
    # beginning one: a run is made to hold the error
    assert "dataset_fingerprint" in runs[cells[1].key].data.tags
    assert "dataset_fingerprint" not in runs[cells[2].key].data.tags
