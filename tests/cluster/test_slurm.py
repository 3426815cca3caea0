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

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "local-cluster"

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
requeue = {requeue}

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
    tmp_path: Path,
    experiment: str,
    gpus: int = 0,
    iterations: int = 4,
    checkpoint_every: int = 2,
    requeue: bool = True,
) -> Path:
    path = tmp_path / "bench.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CONFIG.format(
            root=tmp_path, experiment=experiment, gpus=gpus, iterations=iterations,
            checkpoint_every=checkpoint_every, requeue=str(requeue).lower(),
        )
    )  # fmt: skip
    return path


#: the grid every fault is tried on: two cells side by side, long enough to be interrupted
#: after their first checkpoint
FAULT_GRID = {"iterations": 100, "checkpoint_every": 10}
FAULT_ARGS = ("run", "synth-shadow", "-m", "rddm,resfusion", "--steps", "5", "--executor", "slurm")
HEADLINES = ("istd/psnr_all", "istd/ssim_all", "istd/mae_all_pi")


def start_grid(cluster, path: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench", *FAULT_ARGS, "-c", str(path), *extra]
    return subprocess.Popen(command, env=cluster, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def headline_metrics(cluster, experiment: str) -> dict[str, dict[str, float]]:
    """Per method, the headline metrics of its FINISHED cell run."""
    runs = [r for r in cell_runs(cluster, experiment) if r.info.status == "FINISHED"]
    assert len({r.data.tags["method"] for r in runs}) == len(runs), "a cell finished twice"
    return {r.data.tags["method"]: {k: r.data.metrics[k] for k in HEADLINES} for r in runs}


def first_checkpoint(root: Path, experiment: str, method: str = "rddm") -> None:
    folder = root / "results" / "checkpoints" / experiment / "synth-shadow" / method
    wait_for(f"{method}'s first checkpoint", lambda: list(folder.glob("*.pt")))


def local_cluster(cluster, command: str) -> None:
    done = subprocess.run([str(SCRIPT), command], env=cluster, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def uninterrupted(cluster, tmp_path_factory):
    """The fault grid run without a fault: the metrics every interrupted grid must end at."""
    path = config(tmp_path_factory.mktemp("uninterrupted"), "slurm-uninterrupted", **FAULT_GRID)
    done = bench(cluster, *FAULT_ARGS, "-c", str(path))
    assert done.returncode == 0, done.stderr
    return headline_metrics(cluster, "slurm-uninterrupted")


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
    # bench ui: a tracking server is the UI already (its runs page is printed); a database
    # URI starts a UI here on that database
    shown = bench(cluster, "ui", "-c", str(path))
    assert shown.returncode == 0, shown.stderr
    page = f"{cluster['MLFLOW_TRACKING_URI']}/#/experiments/{experiment.experiment_id}/runs?"
    assert page + "workflowType=machine_learning&viewStateShareKey=bench-runs" in shown.stdout
    found = {r.info.run_id for r in client.search_runs([experiment.experiment_id])}
    assert ui_lists(cluster, path, cluster["BENCH_DATABASE"], experiment.experiment_id) == found


def ui_lists(cluster, path: Path, uri: str, experiment_id: str) -> set[str]:
    """The run ids a `bench ui --tracking-uri URI` started here lists for the experiment."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "bench", "ui", "--tracking-uri", uri, "--port", str(port),
               "-c", str(path)]  # fmt: skip
    process = subprocess.Popen(command, env=cluster, stdout=subprocess.PIPE, text=True)
    try:
        printed = process.stdout.readline() + process.stdout.readline()
        assert f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?" in printed
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as answer:
            return {r["info"]["run_id"] for r in json.load(answer)["runs"]}
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_sbatch_refusal_is_one_line_naming_the_setting(cluster, tmp_path):
    """The default gpus_per_cell = 1 on a cluster without GPUs: sbatch refuses the gres."""
    path = config(tmp_path, "slurm-refused", gpus=1)
    done = bench(cluster, "run", "synth-shadow", "-m", "rddm", "--steps", "2",
                 "--executor", "slurm", "-c", str(path))  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    line = next(line for line in done.stderr.splitlines() if "Slurm refused" in line)
    assert "sbatch: error" in line and "gpus_per_cell = 0" in line


def test_a_requeued_job_resumes_from_its_checkpoint(cluster, uninterrupted, tmp_path):
    """scontrol requeue (what preemption does) mid-training: the new attempt resumes from
    the last checkpoint, the earlier attempt's run ends KILLED with the reason, none is left
    RUNNING, and the metrics equal an uninterrupted cell's."""
    path = config(tmp_path, "slurm-requeue", **FAULT_GRID)
    grid = start_grid(cluster, path)
    first_checkpoint(tmp_path, "slurm-requeue")

    def job_id():
        listed = subprocess.run(["squeue", "-h", "-n", "bench-slurm-requeue", "-o", "%i"],
                                env=cluster, capture_output=True, text=True)  # fmt: skip
        return next((j for j in listed.stdout.split() if j.endswith("_0")), None)  # rddm

    job = wait_for("rddm's job in squeue", job_id)
    requeued = subprocess.run(["scontrol", "requeue", job], env=cluster, capture_output=True, text=True)  # fmt: skip
    assert requeued.returncode == 0, requeued.stderr

    # Slurm holds a requeued job back for a while (BeginTime) once its earlier attempt has
    # ended: make it eligible at once
    def released():
        shown = subprocess.run(["scontrol", "show", "job", job], env=cluster, capture_output=True, text=True)  # fmt: skip
        if "Reason=BeginTime" not in shown.stdout:
            return "Restarts=1" in shown.stdout
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=cluster,
                       capture_output=True, text=True)  # fmt: skip
        return False

    wait_for("the requeued job released", released, seconds=300)
    _, err = grid.communicate(timeout=600)
    assert grid.returncode == 0, err
    runs = [r for r in cell_runs(cluster, "slurm-requeue") if r.data.tags["method"] == "rddm"]
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    finished = next(r for r in runs if r.info.status == "FINISHED")
    killed = next(r for r in runs if r.info.status == "KILLED")
    assert "Slurm requeued the job" in killed.data.tags["error"]
    resumed_at = int(finished.data.tags["resumed_from_iteration"])
    assert 10 <= resumed_at < int(finished.data.params["cell.iterations"]) and resumed_at % 10 == 0
    assert headline_metrics(cluster, "slurm-requeue") == uninterrupted


def test_a_cancelled_cell_is_killed_and_resume_reruns_only_it(cluster, uninterrupted, tmp_path):
    """scancel of one array task while it trains: that cell's run ends KILLED saying the job
    was cancelled, with its log; the other cell finishes; the grid exits non-zero. Then
    --resume resubmits only the cancelled cell, which continues from its checkpoint, and the
    grid ends at the uninterrupted grid's metrics."""
    path = config(tmp_path, "slurm-cancel", **FAULT_GRID)
    grid = start_grid(cluster, path)
    first_checkpoint(tmp_path, "slurm-cancel")
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
    resumed = bench(cluster, *FAULT_ARGS, "-c", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "submitted 1 cell(s) to slurm" in resumed.stderr  # only the missing one
    assert "synth-shadow/resfusion/seed0/smoke: finished in run" in resumed.stderr
    assert headline_metrics(cluster, "slurm-cancel") == uninterrupted


def test_a_failed_node_fails_its_jobs_and_resume_completes_the_grid(
    cluster, uninterrupted, tmp_path
):
    """The node dies mid-training (slurmd and every job process killed), with requeue = false:
    Slurm fails the jobs (NODE_FAIL), bench says so per cell and exits non-zero; with the
    node back, --resume runs the unfinished cells from their checkpoints to the uninterrupted
    grid's metrics."""
    path = config(tmp_path, "slurm-node", requeue=False, **FAULT_GRID)
    grid = start_grid(cluster, path)
    first_checkpoint(tmp_path, "slurm-node")
    local_cluster(cluster, "kill-node")
    try:
        _, err = grid.communicate(timeout=600)
    finally:
        local_cluster(cluster, "start-node")
    assert grid.returncode == 1, err
    assert "Traceback" not in err
    failed = [r for r in cell_runs(cluster, "slurm-node") if r.info.status == "FAILED"]
    assert failed and all("NODE_FAIL" in r.data.tags["error"] for r in failed), err
    assert all(r.info.status != "RUNNING" for r in cell_runs(cluster, "slurm-node"))
    resumed = bench(cluster, *FAULT_ARGS, "-c", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"submitted {len(failed)} cell(s) to slurm" in resumed.stderr
    assert "resuming from" in open_logs(tmp_path)
    assert headline_metrics(cluster, "slurm-node") == uninterrupted


def open_logs(root: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((root / "slurm").rglob("*_log.err")))


def metric_counts(cluster, experiment: str) -> dict[tuple[str, str], int]:
    """Per method and metric key, how many values PostgreSQL holds for the experiment's
    FINISHED cell runs."""
    import psycopg

    query = """
        SELECT method.value, m.key, count(*) FROM metrics m
        JOIN runs r ON r.run_uuid = m.run_uuid
        JOIN experiments e ON e.experiment_id = r.experiment_id
        JOIN tags method ON method.run_uuid = r.run_uuid AND method.key = 'method'
        JOIN tags kind ON kind.run_uuid = r.run_uuid AND kind.key = 'run_kind'
        WHERE e.name = %s AND r.status = 'FINISHED' AND kind.value = 'cell'
        GROUP BY method.value, m.key"""
    with psycopg.connect(cluster["BENCH_DATABASE"]) as connection, connection.cursor() as cursor:
        cursor.execute(query, (experiment,))
        return {(method, key): count for method, key, count in cursor.fetchall()}


def test_a_tracking_server_restart_loses_no_value(cluster, uninterrupted, tmp_path):
    """The tracking server stops mid-grid and starts again once a cell has found it gone:
    the cells retry with backoff, the grid finishes, and PostgreSQL holds as many values of
    every metric of every cell as the uninterrupted grid logged, with the same metrics."""
    path = config(tmp_path, "slurm-restart", **FAULT_GRID)
    grid = start_grid(cluster, path)
    first_checkpoint(tmp_path, "slurm-restart")
    local_cluster(cluster, "stop-mlflow")
    try:
        wait_for("a cell retrying", lambda: "did not answer" in open_logs(tmp_path))
    finally:
        local_cluster(cluster, "start-mlflow")
    _, err = grid.communicate(timeout=600)
    assert grid.returncode == 0, err
    assert "retrying in" in open_logs(tmp_path)
    statuses = sorted(r.info.status for r in cell_runs(cluster, "slurm-restart"))
    assert statuses == ["FINISHED", "FINISHED"]
    counts, expected = (
        metric_counts(cluster, "slurm-restart"),
        metric_counts(cluster, "slurm-uninterrupted"),
    )
    assert counts == expected and sum(counts.values()) > 200
    assert headline_metrics(cluster, "slurm-restart") == uninterrupted


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

    import psycopg

    uri, points = cluster["MLFLOW_TRACKING_URI"], 200
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        run_ids = pool.starmap(_log_like_a_cell, [(uri, i, points) for i in range(8)])
    database = cluster["BENCH_DATABASE"]
    with psycopg.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics WHERE run_uuid = ANY(%s)", (run_ids,))
        assert cursor.fetchone()[0] == 8 * (points + 20)
        cursor.execute(
            "SELECT run_uuid, key, step, count(*) FROM metrics WHERE run_uuid = ANY(%s) "
            "GROUP BY run_uuid, key, step HAVING count(*) > 1", (run_ids,),
        )  # fmt: skip
        assert cursor.fetchall() == []
        cursor.execute("SELECT count(*) FROM runs WHERE run_uuid = ANY(%s) AND status = 'FINISHED'", (run_ids,))  # fmt: skip
        assert cursor.fetchone()[0] == 8
