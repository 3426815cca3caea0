"""bench run --executor slurm against a real Slurm (scripts/local-cluster) and a real
MLflow tracking server backed by PostgreSQL."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.cluster

CONFIG = """
[paths]
data_root = "{root}/data"
results_dir = "{root}/results"
weights_dir = "{root}/weights"

[tracking]
experiment = "{experiment}"

[slurm]
gpus_per_cell = {gpus}
cpus_per_gpu = 1
mem_gb = 2
time_minutes = 20
folder = "{root}/slurm"

[profiles.smoke]
image_size = 32
batch_size = 2
iterations = {iterations}
unet_dim = 8
unet_mults = [1, 2]
checkpoint_every = {checkpoint_every}
eval_images = 3
eval_batch_size = 2
"""


def bench(env, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def config(
    tmp_path: Path, experiment: str, gpus: int = 0, iterations: int = 4, checkpoint_every: int = 2
) -> Path:
    path = tmp_path / "bench.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CONFIG.format(
            root=tmp_path, experiment=experiment, gpus=gpus, iterations=iterations,
            checkpoint_every=checkpoint_every,
        )
    )  # fmt: skip
    return path


def cell_runs(cluster, experiment: str) -> list:
    client = MlflowClient(cluster["MLFLOW_TRACKING_URI"])
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], "tags.run_kind = 'cell'")


def wait_for(what, condition, seconds=300):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def test_a_grid_runs_as_array_tasks_and_json_is_the_only_output(cluster, tmp_path):
    """Each cell is an array task; with a tracking server, standard output holds the JSON
    document and nothing else (MLflow's "View run" links went there)."""
    path = config(tmp_path, "slurm-grid")
    done = bench(cluster, "run", "synth-shadow", "-m", "rddm,sr3", "--steps", "2",
                 "--executor", "slurm", "--json", "-c", str(path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # nothing else on standard output
    assert [c["status"] for c in document["cells"]] == ["FINISHED", "FINISHED"]
    # a cluster without accounting: job states come from squeue, never a flood of sacct errors
    assert "Bypassing sacct" not in done.stderr and done.stderr.count("no job accounting") <= 1
    client = MlflowClient(cluster["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("slurm-grid")
    found = client.search_runs([experiment.experiment_id], "tags.run_kind = 'cell'")
    assert sorted(r.data.tags["method"] for r in found) == ["rddm", "sr3"]
    assert all(r.info.status == "FINISHED" and "istd/psnr_all" in r.data.metrics for r in found)
    # the report reads the server, the sample grid's tiles through its artifact proxy
    reported = bench(cluster, "report", "-c", str(path))
    assert reported.returncode == 0, reported.stderr
    report = tmp_path / "reports" / "slurm-grid"
    assert "## Summary" in (report / "report.md").read_text()
    assert (report / "plots" / "samples-synth-shadow-smoke.png").is_file()


def test_an_sbatch_refusal_is_one_line_naming_the_setting(cluster, tmp_path):
    """The default gpus_per_cell = 1 on a cluster without GPUs: sbatch refuses the gres."""
    path = config(tmp_path, "slurm-refused", gpus=1)
    done = bench(cluster, "run", "synth-shadow", "-m", "rddm", "--steps", "2",
                 "--executor", "slurm", "-c", str(path))  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    line = next(line for line in done.stderr.splitlines() if "Slurm refused" in line)
    assert "sbatch: error" in line and "gpus_per_cell = 0" in line


def test_a_requeued_job_resumes_from_its_checkpoint(cluster, tmp_path):
    """scontrol requeue (what preemption does) mid-training: the new attempt resumes from
    the last checkpoint, the earlier attempt's run ends KILLED with the reason, none is left
    RUNNING, and the metrics equal an uninterrupted cell's."""
    settings = {"iterations": 100, "checkpoint_every": 10}
    path = config(tmp_path / "requeued", "slurm-requeue", **settings)
    command = [sys.executable, "-m", "bench", "run", "synth-shadow", "-m", "rddm", "--steps",
               "2", "--executor", "slurm", "-c", str(path)]  # fmt: skip
    grid = subprocess.Popen(command, env=cluster, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    checkpoints = tmp_path / "requeued" / "results" / "checkpoints"
    wait_for("a first checkpoint", lambda: list(checkpoints.rglob("*.pt")))

    def job_id():
        listed = subprocess.run(["squeue", "-h", "-n", "bench-slurm-requeue", "-o", "%i"],
                                env=cluster, capture_output=True, text=True)  # fmt: skip
        return listed.stdout.split()[0] if listed.stdout.split() else None

    job = wait_for("the job in squeue", job_id)
    requeued = subprocess.run(["scontrol", "requeue", job], env=cluster, capture_output=True, text=True)  # fmt: skip
    assert requeued.returncode == 0, requeued.stderr
    # Slurm holds a requeued job back for a while (BeginTime); make it eligible at once
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=cluster,
                   capture_output=True, text=True)  # fmt: skip
    out, err = grid.communicate(timeout=600)
    assert grid.returncode == 0, err
    runs = cell_runs(cluster, "slurm-requeue")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    finished = next(r for r in runs if r.info.status == "FINISHED")
    killed = next(r for r in runs if r.info.status == "KILLED")
    assert "Slurm requeued the job" in killed.data.tags["error"]
    resumed_at = int(finished.data.tags["resumed_from_iteration"])
    assert 10 <= resumed_at < 100 and resumed_at % 10 == 0
    # the same cell without the requeue
    plain = config(tmp_path / "plain", "slurm-plain", **settings)
    done = bench(cluster, "run", "synth-shadow", "-m", "rddm", "--steps", "2",
                 "--executor", "slurm", "-c", str(plain))  # fmt: skip
    assert done.returncode == 0, done.stderr
    (reference,) = cell_runs(cluster, "slurm-plain")
    for key in ("istd/psnr_all", "istd/ssim_all", "istd/mae_all_pi"):
        assert finished.data.metrics[key] == reference.data.metrics[key], key


def test_a_cancelled_cell_is_killed_with_the_reason_and_the_others_finish(cluster, tmp_path):
    """scancel of one array task while it trains: that cell's run ends KILLED saying the job
    was cancelled, with its log; the other cell finishes; the grid exits non-zero."""
    path = config(tmp_path, "slurm-cancel", iterations=200, checkpoint_every=10)
    command = [sys.executable, "-m", "bench", "run", "synth-shadow", "-m", "rddm,resfusion",
               "--steps", "5", "--executor", "slurm", "-c", str(path)]  # fmt: skip
    grid = subprocess.Popen(command, env=cluster, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    checkpoints = tmp_path / "results" / "checkpoints" / "slurm-cancel" / "synth-shadow" / "rddm"
    wait_for("rddm's first checkpoint", lambda: list(checkpoints.glob("*.pt")))
    listed = subprocess.run(["squeue", "-h", "-n", "bench-slurm-cancel", "-o", "%i %j"],
                            env=cluster, capture_output=True, text=True)  # fmt: skip
    tasks = sorted(line.split()[0] for line in listed.stdout.splitlines())
    assert tasks, listed
    first = next(t for t in tasks if t.endswith("_0"))  # the array's first task: rddm
    subprocess.run(["scancel", first], env=cluster, check=True)
    _, err = grid.communicate(timeout=600)
    assert grid.returncode == 1, err
    runs = {r.data.tags["method"]: r for r in cell_runs(cluster, "slurm-cancel")}
    assert runs["resfusion"].info.status == "FINISHED"
    assert runs["rddm"].info.status == "KILLED"
    reason = runs["rddm"].data.tags["error"]
    assert "CANCELLED" in reason and "log " in reason, reason
    assert "Traceback" not in err


def _log_like_a_cell(uri: str, index: int, points: int) -> str:
    """One cell's logging: a run, a loss curve of ``points`` steps, a summary, its end."""
    from bench.tracking import FINISHED, Tracker

    tracker = Tracker(uri, "concurrent-cells")
    run_id = tracker.start(f"cell {index}", {"run_kind": "cell", "cell": f"c{index}"})
    for start in range(0, points, 25):  # as training logs it, a slice at a time
        tracker.log_history(run_id, "train/loss", [(s, 1.0 / (s + 1)) for s in range(start, start + 25)])  # fmt: skip
    tracker.log_metrics(run_id, {f"istd/m{k}": index + k / 100 for k in range(20)})
    tracker.end(run_id, FINISHED)
    return run_id


def test_eight_cells_logging_at_once_lose_and_duplicate_nothing(cluster):
    """Eight processes log to the server at once; PostgreSQL holds exactly what they logged."""
    import multiprocessing

    import psycopg2

    uri, points = cluster["MLFLOW_TRACKING_URI"], 200
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        run_ids = pool.starmap(_log_like_a_cell, [(uri, i, points) for i in range(8)])
    database = cluster["BENCH_DATABASE"]
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics WHERE run_uuid = ANY(%s)", (run_ids,))
        assert cursor.fetchone()[0] == 8 * (points + 20)
        cursor.execute(
            "SELECT run_uuid, key, step, count(*) FROM metrics WHERE run_uuid = ANY(%s) "
            "GROUP BY run_uuid, key, step HAVING count(*) > 1", (run_ids,),
        )  # fmt: skip
        assert cursor.fetchall() == []
        cursor.execute("SELECT count(*) FROM runs WHERE run_uuid = ANY(%s) AND status = 'FINISHED'", (run_ids,))  # fmt: skip
        assert cursor.fetchone()[0] == 8
