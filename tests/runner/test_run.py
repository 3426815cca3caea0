"""`bench run` end to end on the offline synthetic suite, shortened; faults; resume; `bench ui`."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from bench.cli import app
from bench.config import load_config
from bench.runner import train as train_module
from bench.runner.cells import expand
from bench.runner.execute import RunContext, run_cell
from bench.tracking import FAILED, FINISHED, KILLED

SHORT = """
[paths]
data_root = "{root}/data"
results_dir = "{root}/results"
weights_dir = "{root}/weights"

[tracking]
experiment = "test"

[profiles.smoke]
image_size = 32
batch_size = 2
iterations = 6
unet_dim = 8
unet_mults = [1, 2]
checkpoint_every = 3
eval_images = 3
eval_batch_size = 2
"""


def short_config(tmp_path: Path) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(SHORT.format(root=tmp_path))
    return path


def runs(tmp_path: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    return client, client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The embedded default's path (synth-shadow; rddm, resfusion, sr3), shortened."""
    tmp_path = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(app, ["run", "--config", str(short_config(tmp_path))])
    return tmp_path, result


def test_default_run_prints_the_table_with_identity(default_run):
    _, result = default_run
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "identity (input)" in text
    for method in ("rddm", "resfusion", "sr3"):
        assert method in text
    assert "scored by protocol istd" in text and "psnr_all" in text
    assert "on a subset of the test split: the first 3/12 images" in text
    assert "bench report" in text and "bench ui" in text
    assert "harness overhead" in text


def test_default_run_tracks_parent_and_children(default_run):
    tmp_path, _ = default_run
    client, found = runs(tmp_path)
    parents = [r for r in found if r.data.tags.get("run_kind") == "grid"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == FINISHED
    assert parent.data.params["run.dataset"] == "synth-shadow"
    assert parent.data.params["profiles.smoke.iterations"] == "6"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "config.json",
        "environment.json",
    }
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    cells = [r for r in children if r.data.tags["run_kind"] == "cell"]
    assert sorted(r.data.tags["method"] for r in cells) == ["rddm", "resfusion", "sr3"]
    assert [r.data.tags["method"] for r in children if r.data.tags["run_kind"] == "identity"] == [
        "identity"
    ]
    # the packaged per-method factors scale this file's 6 iterations (bench.toml)
    iterations = {"rddm": "8", "resfusion": "12", "sr3": "24"}  # 1.25 x 6 = 7.5 rounds to 8
    for run in cells:
        assert run.info.status == FINISHED
        assert run.data.params["cell.iterations"] == iterations[run.data.tags["method"]]
        assert run.data.params["config.run.profile"] == "smoke"
        for tag in ("git_commit", "git_dirty", "version.torch", "device", "seed", "profile"):
            assert tag in run.data.tags, tag
        assert len(run.data.tags["dataset_fingerprint"]) == 64
        metrics = run.data.metrics
        assert "istd/psnr_all" in metrics and "istd/ssim_all" in metrics
        assert "profile/params_m" in metrics and "profile/gmacs_thop_step" in metrics
        history = client.get_metric_history(run.info.run_id, "train/loss")
        count = int(iterations[run.data.tags["method"]])
        assert [m.step for m in history] == list(range(1, count + 1))
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"per_image.csv", "sample_grid.png", "cost.json"} <= artifacts
        samples = Path(run.data.tags["samples_dir"])
        assert len(list(samples.glob("*.png"))) == 3
        assert run.data.tags["eval_images"] == "3/12" and run.data.tags["eval_subset"] == "yes"


def test_the_sample_grid_shows_input_output_and_truth_at_the_files_size(default_run):
    """The grid a researcher looks at first: each test image's input, output and ground
    truth at the files' size (not the loader's 32 px), captioned with the image's name and
    per-image PSNR; its tiles are logged for the report's method-by-method grid."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    tmp_path, _ = default_run
    client, found = runs(tmp_path)
    cell = next(r for r in found if r.data.tags.get("method") == "rddm")
    folder = Path(cell.data.tags["samples_dir"]).parent
    truth = sorted((tmp_path / "data" / "synth-shadow" / "test" / "test_C").glob("*.png"))[:3]
    height, width = np.asarray(Image.open(truth[0])).shape[:2]
    grid = np.asarray(Image.open(folder / "sample_grid.png"))
    # three columns as wide as the files, three rows as tall, with room for the captions
    assert grid.shape[1] >= 3 * width and grid.shape[0] >= 3 * height
    tiles = {a.path for a in client.list_artifacts(cell.info.run_id, "grid")}
    names = [p.stem for p in truth]
    assert tiles == {
        f"grid/{n}__{role}.png" for n in names for role in ("input", "output", "target")
    }
    for name, path in zip(names, truth, strict=True):
        target = np.asarray(Image.open(folder / "grid" / f"{name}__target.png"))
        assert np.array_equal(target, np.asarray(Image.open(path).convert("RGB")))
        output = np.asarray(Image.open(folder / "grid" / f"{name}__output.png"))
        assert np.array_equal(
            output, np.asarray(Image.open(folder / "samples_native" / f"{name}.png"))
        )
    # the caption reads the per-image table
    from bench.image_grid import per_image_caption

    table = pd.read_csv(folder / "per_image.csv")
    assert per_image_caption("istd", table, names[0]) == f"PSNR {table.loc[0, 'psnr_all']:.2f}"


def test_each_method_trains_and_tests_on_its_papers_pipeline(default_run):
    """Resfusion trains on random crops and samples the test images at the files' size;
    RDDM resizes them to the profile's size; both runs record it."""
    from PIL import Image

    tmp_path, _ = default_run
    _, found = runs(tmp_path)
    cells = {r.data.tags["method"]: r for r in found if r.data.tags.get("run_kind") == "cell"}
    resfusion, rddm = cells["resfusion"], cells["rddm"]
    assert resfusion.data.tags["pipeline"] == "resfusion" and rddm.data.tags["pipeline"] == "rddm"
    assert resfusion.data.params["cell.pipeline.train_crop"] == "random"
    assert resfusion.data.params["cell.pipeline.test_size"] == "native"
    assert rddm.data.params["cell.pipeline.train_flip"] == "always"
    assert rddm.data.params["cell.pipeline.test_size"] == "resize"
    size = int(rddm.data.params["cell.image_size"])
    truth = sorted((tmp_path / "data" / "synth-shadow" / "test" / "test_C").glob("*.png"))[0]
    for run, expected in ((resfusion, Image.open(truth).size), (rddm, (size, size))):
        sample = Path(run.data.tags["samples_dir"]) / truth.name
        assert Image.open(sample).size == expected


def test_the_audit_logs_each_variants_own_values(default_run):
    """Beside the audit rows (audit/istd-origin/psnr), every value of each variant protocol:
    the paper tables at the original resolution read the regions (audit/istd-origin/psnr_s)."""
    tmp_path, _ = default_run
    _, found = runs(tmp_path)
    metrics = next(r for r in found if r.data.tags.get("method") == "rddm").data.metrics
    for key in ("psnr_s", "psnr_ns", "ssim_s", "mae_ns_pi", "mae_all_pp"):
        assert f"audit/istd-origin/{key}" in metrics, key
    assert metrics["audit/istd-origin/psnr_all"] == metrics["audit/istd-origin/psnr"]
    assert metrics["audit/istd-origin/mae_s_pi"] == metrics["audit/istd-origin/mae_s"]


def test_metric_without_weights_is_unavailable_not_zero(default_run):
    tmp_path, _ = default_run
    _, found = runs(tmp_path)
    cell = next(r for r in found if r.data.tags.get("run_kind") == "cell")
    assert "istd/lpips" not in cell.data.metrics
    assert "bench weights" in cell.data.tags["unavailable.istd/lpips"]


def test_samples_rescored_by_bench_score_give_the_runs_numbers(default_run, tmp_path):
    """A run scores against the ground-truth files at their own size, as `bench score` does
    on the saved samples (the loader's resized copies are for the networks only)."""
    import shutil

    root, _ = default_run
    _, found = runs(root)
    cell = next(r for r in found if r.data.tags.get("method") == "rddm")
    samples = Path(cell.data.tags["samples_dir"])
    suite = root / "data" / "synth-shadow" / "test"
    for folder, role in (("gt", "test_C"), ("mask", "test_B")):
        (tmp_path / folder).mkdir()
        for sample in samples.glob("*.png"):
            shutil.copy(suite / role / sample.name, tmp_path / folder / sample.name)
    result = CliRunner().invoke(
        app,
        ["score", str(samples), str(tmp_path / "gt"), "--mask-dir", str(tmp_path / "mask"),
         "-p", "istd", "--json", "-c", str(root / "bench.toml")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    for key in ("psnr_all", "ssim_all", "mae_all_pi", "mae_s_pi", "psnr_ns"):
        assert summary[key] == pytest.approx(cell.data.metrics[f"istd/{key}"], abs=1e-9), key
    # and the run audited its outputs: the paper's row equals the headline metrics
    assert cell.data.metrics["audit/istd/psnr"] == cell.data.metrics["istd/psnr_all"]
    assert "audit/istd-origin/mae_s" in cell.data.metrics


def cell_and_context(tmp_path: Path, method: str = "rddm-sm-res"):
    config = load_config(short_config(tmp_path), {"run": {"methods": [method]}})
    (cell,) = expand(config)
    context = RunContext(
        tracking_uri=config.tracking_uri(),
        experiment="test",
        parent_run_id=None,
        data_root=config.paths.data_root,
        weights_dir=config.paths.weights_dir,
        results_dir=config.paths.results_dir,
        device="cpu",
        config=config.to_dict(),
    )
    return cell, context


@contextlib.contextmanager
def interrupted_at(backward: int, monkeypatch):
    """Ctrl-C during training's ``backward``-th backward pass, inside the block."""
    calls = {"n": 0}
    original = train_module.NetworkClock.backward

    def interrupt(self, loss):
        calls["n"] += 1
        if calls["n"] == backward:
            raise KeyboardInterrupt
        original(self, loss)

    monkeypatch.setattr(train_module.NetworkClock, "backward", interrupt)
    try:
        yield
    finally:
        monkeypatch.setattr(train_module.NetworkClock, "backward", original)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-cell run, shared by the determinism and resume tests."""
    tmp_path = tmp_path_factory.mktemp("cell")
    cell, context = cell_and_context(tmp_path)
    return tmp_path, cell, context, run_cell(cell, context)


def test_same_seed_gives_identical_metrics(reference):
    _, cell, context, first = reference
    second = run_cell(cell, context)
    assert first.status == second.status == FINISHED
    assert first.metrics == second.metrics
    other = run_cell(dataclasses.replace(cell, seed=1), context)
    assert other.metrics != first.metrics


def test_learning_curve_is_logged_and_leaves_training_unchanged(reference):
    """--eval-every samples the EMA on the way; it draws from no stream training uses, so
    the run ends at the very numbers of a run without it."""
    tmp_path, cell, context, plain = reference
    record = run_cell(dataclasses.replace(cell, eval_every=2), context)
    assert record.metrics == plain.metrics
    client, _ = runs(tmp_path)
    history = client.get_metric_history(record.run_id, "curve/istd/psnr_all")
    points = sorted((m.step, m.value) for m in history)
    assert [step for step, _ in points] == [2, 4, 6]
    assert points[-1][1] == record.metrics["istd/psnr_all"]
    assert len({value for _, value in points}) == 3  # the EMA moved between evaluations


def test_interrupted_run_is_killed_and_resumes_to_the_same_metrics(reference, monkeypatch):
    tmp_path, cell, context, uninterrupted = reference
    with interrupted_at(5, monkeypatch), pytest.raises(KeyboardInterrupt):
        run_cell(cell, context)  # a fresh start: overwrites the reference's checkpoint
    client, found = runs(tmp_path)
    assert found[0].info.status == KILLED  # newest first

    resumed = run_cell(cell, dataclasses.replace(context, resume=True))
    assert resumed.status == FINISHED
    tags = client.get_run(resumed.run_id).data.tags
    assert tags["resumed_from_iteration"] == "4"
    assert tags["resumed_from_run"] == found[0].info.run_id  # the killed run it continued
    assert resumed.metrics == uninterrupted.metrics


def test_failing_cell_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    import baselines

    original = baselines.build_method

    def build(name, **options):
        method = original(name, **options)
        if name == "resfusion":
            real_loss = method.loss
            method.loss = lambda batch, generator=None: {
                k: v * float("nan") for k, v in real_loss(batch, generator).items()
            }
        return method

    monkeypatch.setattr(baselines, "build_method", build)
    config = short_config(tmp_path)
    result = CliRunner().invoke(app, ["run", "-c", str(config), "-m", "rddm-sm-res,resfusion"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "resfusion" in text and "FAILED" in text and "loss became nan" in text
    _, found = runs(tmp_path)
    status = {
        r.data.tags["method"]: r.info.status for r in found if r.data.tags["run_kind"] == "cell"
    }
    assert status == {"rddm-sm-res": FINISHED, "resfusion": FAILED}
    parent = next(r for r in found if r.data.tags["run_kind"] == "grid")
    assert parent.info.status == FAILED


def test_unreachable_store_is_reported_before_training(tmp_path):
    config = short_config(tmp_path)
    result = CliRunner().invoke(
        app, ["run", "-c", str(config), "--tracking-uri", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    assert "unreachable" in result.output
    assert not (tmp_path / "results" / "checkpoints").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_ui_serves_the_store_and_stops_cleanly(default_run):
    tmp_path, _ = default_run
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "ui",
            "--port",
            str(port),
            "-c",
            str(tmp_path / "bench.toml"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        printed = process.stdout.readline() + process.stdout.readline()
        client, found = runs(tmp_path)
        experiment = client.get_experiment_by_name("test")
        experiment_id = experiment.experiment_id
        # opens on the experiment's training runs, not MLflow 3's GenAI home page, in a
        # view that lists the cells flat, best first, with the headline metrics as columns
        page = f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?"
        assert page + "workflowType=machine_learning&viewStateShareKey=bench-runs" in printed
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        view = json.loads(experiment.tags["mlflow.sharedViewState.bench-runs"])
        metrics = [c for c in view["selectedColumns"] if c.startswith("metrics.")]
        assert metrics == [
            f"metrics.`istd/{key}`"
            for key in ("psnr_all", "ssim_all", "mae_all_pi", "mae_s_pi", "lpips")
        ]
        assert view["orderByKey"] == "metrics.`istd/psnr_all`" and view["orderByAsc"] is False
        assert view["columnOrder"] == view["selectedColumns"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            listed = json.load(answer)["runs"]
        assert {r["info"]["run_id"] for r in listed} == {r.info.run_id for r in found}
        server = _descendants(process.pid)
        assert server and all(os.getpgid(pid) != os.getpgid(0) for pid in server)
    finally:
        process.send_signal(signal.SIGTERM)  # SIGTERM (what a scheduler sends), not Ctrl-C
        process.wait(timeout=30)
    assert process.returncode == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    assert not [pid for pid in server if _running(pid)]  # its workers are gone too


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child not yet reaped by its new parent)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(parent: int) -> list[int]:
    """Every live process whose chain of parents reaches ``parent``."""

    def parent_of(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])

    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            ancestor = parent_of(pid)
            while ancestor > 1 and ancestor != parent:
                ancestor = parent_of(ancestor)
        except (OSError, ValueError):
            continue
        if ancestor == parent:
            found.append(pid)
    return found


def test_cuda_device_without_cuda_is_a_clear_error(reference):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _, cell, context, _ = reference
    record = run_cell(cell, dataclasses.replace(context, device="cuda"))
    assert record.status == FAILED
    assert "no CUDA device" in record.error


def _official_files(folder: Path) -> dict[str, Path]:
    """RDDM Trainer (two 9-channel UNets: image, input, mask read as RGB), Resfusion Lightning
    (8 channels: image, input, two-channel mask one-hot) and SR3 generator (7 channels)
    files, as the official code writes them, for synth-shadow at the short profile."""
    import official_reference as official

    unets = {
        slot: official.rddm_unet_state(9, 3, 8, (1, 2), seed=i)
        for i, slot in enumerate(("unet0", "unet1"))
    }
    model = {f"model.{slot}.{k}": v for slot, state in unets.items() for k, v in state.items()}
    files = {"rddm": folder / "model-80.pt", "resfusion": folder / "last.ckpt"}
    torch.save({"step": 80, "model": model, "ema": {}}, files["rddm"])
    unet = official.rddm_unet_state(8, 3, 8, (1, 2), seed=5)
    torch.save(
        {
            "state_dict": {f"denoising_module.{k}": v for k, v in unet.items()},
            "hyper_parameters": {"T": 12, "noise_schedule": "LinearPro", "mode": "epsilon"},
        },
        files["resfusion"],
    )
    sr3 = official.sr3_unet_state(7, 3, inner=32, mults=(1, 2), attn_res=(16,), image_size=32)
    files["sr3"] = folder / "I1000_E1_gen.pth"
    torch.save({f"denoise_fn.{k}": v for k, v in sr3.items()}, files["sr3"])
    return files


@pytest.mark.parametrize("method", ["rddm", "resfusion", "sr3"])
def test_official_checkpoint_runs_without_training(tmp_path, method):
    """`bench run --checkpoint` on each official format: loaded with its inferred
    configuration, sampled, scored and tagged, nothing trained."""
    path = _official_files(tmp_path)[method]
    config = ["--config", str(short_config(tmp_path))]
    steps = {"rddm": "2", "resfusion": "5", "sr3": "3"}[method]
    base = ["run", "synth-shadow", "--methods", method, "--steps", steps, *config]
    result = CliRunner().invoke(app, [*base, "--checkpoint", str(path), "--weight-set", "online"])
    assert result.exit_code == 0, result.output
    _, found = runs(tmp_path)
    cell = next(r for r in found if r.data.tags.get("run_kind") == "cell")
    assert cell.info.status == FINISHED, cell.data.tags.get("error")
    formats = {"rddm": "rddm-trainer", "resfusion": "resfusion-lightning", "sr3": "sr3-generator"}
    assert cell.data.tags["weights.format"] == formats[method]
    assert cell.data.tags["weights.set"] == "online"
    assert "istd/psnr_all" in cell.data.metrics
    assert not (tmp_path / "results" / "checkpoints").exists()  # nothing was trained
    if method == "rddm":
        wrong = CliRunner().invoke(
            app, ["run", "synth-shadow", "--methods", "sr3", *config, "--checkpoint", str(path)]
        )
        assert wrong.exit_code == 2 and "not sr3; run it with --methods rddm" in wrong.output


def test_resume_refuses_a_checkpoint_trained_under_other_settings(reference):
    """--iters 20 -o sum_scale=0.5 --resume after a default run used to load the
    default checkpoint and log it as 20 iterations with sum_scale 0.5."""
    tmp_path, cell, context, _ = reference
    config = ["-c", str(short_config(tmp_path)), "-m", "rddm-sm-res"]
    result = CliRunner().invoke(
        app, ["run", *config, "--iters", "20", "-o", "sum_scale=0.5", "--resume"]
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "trained under other settings" in text and "drop --resume" in text
    assert "iterations=6 (now 20)" in text and "'sum_scale': 0.5" in text
    # inside the checkpoint too: a file renamed into place is refused by its settings
    from bench.runner.execute import checkpoint_path

    other = dataclasses.replace(cell, lr=cell.lr * 2)
    here, there = (
        checkpoint_path(context.results_dir, c, context.experiment) for c in (cell, other)
    )
    here.rename(there)
    record = run_cell(other, dataclasses.replace(context, resume=True))
    assert record.status == FAILED and "lr=" in record.error and "drop --resume" in record.error


def test_runs_of_a_killed_process_are_marked_failed(tmp_path):
    """After SIGKILL a run stays RUNNING; the next bench run on the store closes it."""
    from bench.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "test")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tracker.start("killed cell", {"run_kind": "cell"})
    tracker.set_tags(orphan, {"bench.pid": dead.pid})
    alive = tracker.start("live cell", {"run_kind": "cell"})  # this process: still alive
    assert tracker.settle_stale() == ["killed cell"]
    run = tracker.client.get_run(orphan)
    assert run.info.status == FAILED and f"process {dead.pid}" in run.data.tags["error"]
    assert tracker.client.get_run(alive).info.status == "RUNNING"


def test_precision_and_compile_are_recorded_and_compile_falls_back(reference, monkeypatch):
    """bf16 autocast samples and is tagged with the hardware's bf16 support; a compiler
    failure leaves the networks eager, says why, and the cell still finishes."""
    from torch import nn

    from bench.runner import precision

    tmp_path, cell, context, _ = reference
    record = run_cell(dataclasses.replace(cell, precision="bf16"), context)
    assert record.status == FINISHED
    client, _ = runs(tmp_path)
    tags = client.get_run(record.run_id).data.tags
    assert tags["precision"] == "bf16" and tags["compile"] == "no"
    assert tags["native_bf16"] == (precision.native_bf16(torch.device("cpu")) or "none")

    def broken(self, *args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(nn.Module, "compile", broken)
    record = run_cell(dataclasses.replace(cell, compile=True), context)
    assert record.status == FINISHED
    tags = client.get_run(record.run_id).data.tags
    assert tags["compile"] == "no: RuntimeError: no C++ compiler"


def test_bf16_sampling_of_the_same_weights_stays_within_0_05_db(reference):
    """The reference cell's trained weights sampled again in fp32 and under bf16 autocast
    (--checkpoint: nothing trains): the headline PSNR moves by less than 0.05 dB."""
    from bench.runner.execute import checkpoint_path

    _, cell, context, trained = reference
    saved = checkpoint_path(context.results_dir, cell, context.experiment)
    weights = dataclasses.replace(context, checkpoint=saved)
    fp32 = run_cell(cell, weights)
    bf16 = run_cell(dataclasses.replace(cell, precision="bf16"), weights)
    assert fp32.status == bf16.status == FINISHED, (fp32.error, bf16.error)
    assert fp32.metrics["istd/psnr_all"] == trained.metrics["istd/psnr_all"]  # same weights
    assert abs(bf16.metrics["istd/psnr_all"] - fp32.metrics["istd/psnr_all"]) < 0.05


def test_ctrl_c_says_what_was_kept_and_the_command_that_continues(tmp_path, monkeypatch):
    """Interrupted mid-training: exit 130, the runs KILLED, the checkpoint kept, and the exact
    --resume command, which then continues the cell from its checkpoint."""
    config = short_config(tmp_path)
    args = ["run", "-c", str(config), "-m", "rddm-sm-res", "--seeds", "0"]
    with interrupted_at(5, monkeypatch):
        result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 130, result.output
    text = " ".join(result.output.split())
    assert "interrupted: the unfinished runs are marked KILLED" in text
    assert "checkpoints are kept for synth-shadow/rddm-sm-res/seed0/smoke" in text
    command = f"bench run -c {config} -m rddm-sm-res --seeds 0 --resume"
    assert f"continue the grid with: {command}" in text
    resumed = CliRunner().invoke(app, command.split()[1:], terminal_width=300)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from" in " ".join(resumed.output.split())


def test_resume_continues_this_experiment_and_says_what_each_cell_does(reference):
    """A checkpoint of other settings left by another experiment is not this grid's: --resume
    in a new experiment trains afresh and says so, instead of refusing; a second --resume
    keeps the cell it finished."""
    tmp_path, _, _, _ = reference
    config = ["-c", str(short_config(tmp_path)), "-m", "rddm-sm-res", "--seeds", "0"]
    result = CliRunner().invoke(
        app, ["run", *config, "--iters", "3", "--experiment", "other", "--resume"],
        terminal_width=300,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "synth-shadow/rddm-sm-res/seed0/smoke: --resume found no checkpoint of these settings "
        "in experiment 'other': it trains from the start"
    ) in text
    again = CliRunner().invoke(
        app, ["run", *config, "--iters", "3", "--experiment", "other", "--resume"],
        terminal_width=300,
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "seed0/smoke: finished in run" in " ".join(again.output.split())


def test_resume_keeps_finished_cells_and_runs_only_the_missing_one(tmp_path, monkeypatch):
    """A grid interrupted in its second cell: --resume keeps the first cell's finished run
    (no second run of it), runs the second, and the table equals an uninterrupted grid's."""
    config = short_config(tmp_path)
    args = ["run", "-c", str(config), "-m", "rddm-sm-res,sr3", "--seeds", "0", "--json"]
    with interrupted_at(6 + 5, monkeypatch):  # the second cell, past its checkpoint at 3
        result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 130, result.output
    resumed = CliRunner().invoke(app, [*args, "--resume"], terminal_width=300)
    assert resumed.exit_code == 0, resumed.output
    client, found = runs(tmp_path)
    cells = [r for r in found if r.data.tags.get("run_kind") == "cell"]
    statuses = sorted((r.data.tags["method"], r.info.status) for r in cells)
    assert statuses == [("rddm-sm-res", "FINISHED"), ("sr3", "FINISHED"), ("sr3", "KILLED")]
    (sr3,) = [r for r in cells if r.data.tags["method"] == "sr3" and r.info.status == FINISHED]
    assert int(sr3.data.tags["resumed_from_iteration"]) >= 3  # from a checkpoint, not 0
    plain = tmp_path / "plain"
    plain.mkdir()
    uninterrupted = CliRunner().invoke(
        app, ["run", "-c", str(short_config(plain)), *args[3:]], terminal_width=300
    )
    assert uninterrupted.exit_code == 0, uninterrupted.output

    def metrics(output: str) -> list:
        return [(c["cell"], c["metrics"]) for c in json.loads(output)["cells"]]

    assert metrics(resumed.stdout) == metrics(uninterrupted.stdout)


def test_the_identity_baseline_is_scored_once_per_data_and_protocol(tmp_path):
    """A second run on the same data reads the identity's scores instead of scoring again;
    another number of images scored is another key."""
    config = short_config(tmp_path)
    args = ["run", "-c", str(config), "-m", "rddm-sm-res", "--iters", "2"]
    first = CliRunner().invoke(app, args, terminal_width=300)
    second = CliRunner().invoke(app, args, terminal_width=300)
    assert first.exit_code == second.exit_code == 0, second.output
    assert "scoring the identity baseline" in first.output
    assert "identity baseline: the scores kept in" in second.output
    assert "scoring the identity baseline" not in second.output
    identity = [
        next(line for line in r.output.splitlines() if line.startswith("│ identity (input)"))
        for r in (first, second)
    ]
    assert identity[0].split()[:12] == identity[1].split()[:12]  # every metric, not seconds
    kept = list((tmp_path / "results" / "identity").glob("synth-shadow-istd-*.json"))
    assert len(kept) == 1
    config.write_text(config.read_text().replace("eval_images = 3", "eval_images = 2"))
    third = CliRunner().invoke(app, args, terminal_width=300)
    assert "scoring the identity baseline" in third.output
    assert len(list((tmp_path / "results" / "identity").glob("*.json"))) == 2


def test_a_cell_run_logs_its_dataset_with_the_lock_fingerprint(reference):
    """The MLflow UI's Datasets column: the dataset's name, its fingerprint as the digest."""
    tmp_path, _, _, record = reference
    client, _ = runs(tmp_path)
    run = client.get_run(record.run_id)
    (entry,) = run.inputs.dataset_inputs
    fingerprint = run.data.tags["dataset_fingerprint"]
    assert entry.dataset.name == "synth-shadow" and entry.dataset.digest == fingerprint[:36]
    assert json.loads(entry.dataset.source)["fingerprint"] == fingerprint
    assert {t.key: t.value for t in entry.tags}["mlflow.data.context"] == "training"


def test_a_generation_run_is_scored_by_its_protocol(tmp_path):
    """synth-faces is scored by protocol celeba like any dataset by its own: the run logs
    celeba/<metric>, FID without Inception weights is unavailable with the reason (never 0),
    and the scoring record carries the protocol's notes (the paper's tool)."""
    config = ["-c", str(short_config(tmp_path)), "--json"]
    result = CliRunner().invoke(app, ["run", "synth-faces", "-m", "ddim", "--iters", "2", *config])
    assert result.exit_code == 0, result.output
    (cell,) = json.loads(result.stdout)["cells"]
    assert cell["status"] == FINISHED
    assert cell["unavailable"]["celeba/fid"].startswith("FID")  # the reason, not a value
    assert not [key for key in cell["metrics"] if not key.startswith("celeba/")]
    client, found = runs(tmp_path)
    (run,) = [r for r in found if r.data.tags.get("run_kind") == "cell"]
    assert run.data.tags["protocol"] == "celeba" and "unavailable.celeba/fid" in run.data.tags
    assert not [key for key in run.data.metrics if key.startswith("generation/")]
    local = client.download_artifacts(run.info.run_id, "scoring.json", str(tmp_path))
    meta = json.loads(Path(local).read_text())
    assert meta["protocol"] == "celeba" and "pytorch-fid" in meta["paper_tool"]


def test_a_grid_checks_each_dataset_against_its_lock_once(tmp_path, monkeypatch):
    """The dataset is resolved once at the grid's start and carried to its cells: two cells
    on one dataset check its files against the lock once, not once per cell."""
    from bench.data import verify

    calls = []
    original = verify.check_lock

    def counted(spec, root):
        calls.append(spec.name)
        return original(spec, root)

    monkeypatch.setattr(verify, "check_lock", counted)
    args = ["run", "-c", str(short_config(tmp_path)), "-m", "rddm-sm-res,sr3", "--iters", "2"]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert calls == ["synth-shadow"]
