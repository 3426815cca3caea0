"""bench run --executor slurm against a real Slurm (scripts/local-cluster) and a real
MLflow tracking server backed by PostgreSQL."""

import json
import subprocess
import sys
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
iterations = 4
unet_dim = 8
unet_mults = [1, 2]
checkpoint_every = 2
eval_images = 3
eval_batch_size = 2
"""


def bench(env, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def config(tmp_path: Path, experiment: str, gpus: int = 0) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(CONFIG.format(root=tmp_path, experiment=experiment, gpus=gpus))
    return path


def test_a_grid_runs_as_array_tasks_and_json_is_the_only_output(cluster, tmp_path):
    """Each cell is an array task; with a tracking server, standard output holds the JSON
    document and nothing else (MLflow's "View run" links went there)."""
    path = config(tmp_path, "slurm-grid")
    done = bench(cluster, "run", "synth-shadow", "-m", "rddm,sr3", "--steps", "2",
                 "--executor", "slurm", "--json", "-c", str(path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # nothing else on standard output
    assert [c["status"] for c in document["cells"]] == ["FINISHED", "FINISHED"]
    # a cluster without accounting: one line says so, however often submitit polled
    assert done.stderr.count("no job accounting") == 1 and "Bypassing sacct" not in done.stderr
    client = MlflowClient(cluster["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("slurm-grid")
    found = client.search_runs([experiment.experiment_id], "tags.run_kind = 'cell'")
    assert sorted(r.data.tags["method"] for r in found) == ["rddm", "sr3"]
    assert all(r.info.status == "FINISHED" and "istd/psnr_all" in r.data.metrics for r in found)


def test_an_sbatch_refusal_is_one_line_naming_the_setting(cluster, tmp_path):
    """The default gpus_per_cell = 1 on a cluster without GPUs: sbatch refuses the gres."""
    path = config(tmp_path, "slurm-refused", gpus=1)
    done = bench(cluster, "run", "synth-shadow", "-m", "rddm", "--steps", "2",
                 "--executor", "slurm", "-c", str(path))  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    line = next(line for line in done.stderr.splitlines() if "Slurm refused" in line)
    assert "sbatch: error" in line and "gpus_per_cell = 0" in line
