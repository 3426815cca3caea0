"""`bench run synth-sr` end to end, shortened: the methods super-resolve the bicubic-upsampled
LR, the identity row is the bicubic baseline scored by sr-y, and DDIM refuses the task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from test_run import SHORT
from typer.testing import CliRunner

from bench.cli import app
from bench.metrics.resize import imresize

SR = (
    SHORT
    + """
[run]
dataset = "synth-sr"
methods = ["rddm", "resfusion", "sr3"]

[profiles.smoke.methods.sr3]
max_steps = 4
"""
)


def _y(image: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr on uint8, Y only, rounded (written out here, independent of bench)."""
    r, g, b = image.astype(np.float64).transpose(2, 0, 1)
    return np.floor((65.481 * r + 128.553 * g + 24.966 * b) / 255 + 16.5)


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sr-run")
    config = tmp_path / "bench.toml"
    config.write_text(SR.format(root=tmp_path))
    result = CliRunner().invoke(app, ["run", "--config", str(config)], terminal_width=200)
    return tmp_path, result


def test_synth_sr_runs_every_method_beside_the_bicubic_baseline(sr_run):
    tmp_path, result = sr_run
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "bicubic (input)" in text and "scored by protocol sr-y" in text
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    found = {r.data.tags.get("method"): r for r in client.search_runs([experiment.experiment_id])}
    assert {"identity", "rddm", "resfusion", "sr3"} <= set(found)
    for method in ("rddm", "resfusion", "sr3"):
        run = found[method]
        assert run.info.status == "FINISHED" and run.data.tags["task"] == "super-resolution"
        assert np.isfinite(run.data.metrics["sr-y/psnr"])
        assert run.data.params["cell.pipeline.test_size"] == "native"
    assert found["sr3"].data.params["cell.steps"] == "4"  # the profile's max_steps on 2000


def test_the_identity_row_is_bicubic_scored_as_the_sr_scripts_do(sr_run):
    """Its PSNR recomputed here: the first 3 test images (eval_images), the LR file upsampled
    x4 by MATLAB bicubic, the HR file cropped to 96x128, 4 pixels shaved, Y, scikit-image."""
    tmp_path, result = sr_run
    root = tmp_path / "data" / "synth-sr" / "test"
    values = []
    for hr_file in sorted((root / "HR").glob("*.png"))[:3]:
        hr = np.asarray(Image.open(hr_file))[:96, :128]
        lr = np.asarray(Image.open(root / "LR_bicubic" / "X4" / f"{hr_file.stem}x4.png"))
        up = imresize(torch.from_numpy(lr.copy()).permute(2, 0, 1)[None], (96, 128))
        up = up[0].permute(1, 2, 0).numpy()
        shaved = [_y(image)[4:-4, 4:-4] for image in (hr, up)]
        values.append(peak_signal_noise_ratio(shaved[0], shaved[1], data_range=255))
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    identity = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("method") == "identity"
    ][0]
    assert identity.data.metrics["sr-y/psnr"] == pytest.approx(np.mean(values), abs=1e-9)


def test_ddim_refuses_super_resolution_in_one_line(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(SR.format(root=tmp_path))
    result = CliRunner().invoke(app, ["run", "--config", str(config), "-m", "ddim"])
    assert result.exit_code == 2
    assert "ddim does not apply to dataset synth-sr (task super-resolution)" in result.output
    assert "Traceback" not in result.output


def test_an_official_sr3_64_512_file_super_resolves_synth_sr_without_options(tmp_path):
    """`bench run synth-sr -m sr3 --checkpoint FILE` on a generator file of the official
    sr_sr3_64_512 structure (6 input channels: upsampled LR and noisy HR; multipliers
    1,2,4,8,16, one res block, no attention): built with the 16 groups that structure
    implies, sampled on the file's 2000-step schedule respaced to --steps, scored by sr-y."""
    import official_reference as official

    state = official.sr3_unet_state(6, 3, inner=16, mults=(1, 2, 4, 8, 16), res_blocks=1, attn_res=(), image_size=32)  # fmt: skip
    path = tmp_path / "I1000000_E200_gen.pth"
    torch.save({f"denoise_fn.{k}": v for k, v in state.items()}, path)
    config = tmp_path / "bench.toml"
    config.write_text(SR.format(root=tmp_path))
    args = ["run", "--config", str(config), "-m", "sr3", "--steps", "3", "--checkpoint", str(path)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    cell = next(
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("run_kind") == "cell"
    )
    assert cell.info.status == "FINISHED", cell.data.tags.get("error")
    assert cell.data.tags["weights.format"] == "sr3-generator"
    assert np.isfinite(cell.data.metrics["sr-y/psnr"])
    assert not (tmp_path / "results" / "checkpoints").exists()  # nothing was trained
    inferred = " ".join(v for k, v in cell.data.tags.items() if k.startswith("weights."))
    assert "'norm_groups': 16" in inferred and "'unet_mults': (1, 2, 4, 8, 16)" in inferred


def test_a_test_only_set_needs_a_checkpoint(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(SR.format(root=tmp_path))
    result = CliRunner().invoke(app, ["run", "set5", "--config", str(config), "-m", "sr3"])
    assert result.exit_code == 2
    assert "set5 has no training split: pass --checkpoint FILE" in " ".join(result.output.split())


def test_bench_score_on_the_run_s_folder_reproduces_its_score(sr_run):
    """Outputs are named after their HR images, so `bench score RUN HR --scale 4` pairs them
    without --match and gives the run's own sr-y PSNR."""
    import json

    tmp_path, result = sr_run
    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    run = next(
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("method") == "rddm"
    )
    import shutil

    folder = tmp_path / "results" / "runs" / run.info.run_id
    hr = tmp_path / "scored-hr"  # the HR images of the 3 scored (eval_images = 3)
    hr.mkdir()
    for image in (folder / "samples_native").iterdir():
        shutil.copy(tmp_path / "data" / "synth-sr" / "test" / "HR" / image.name, hr)
    args = ["score", str(folder), str(hr), "--protocol", "sr-y", "--scale", "4", "--json"]
    scored = CliRunner().invoke(app, args)
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)["summary"]
    assert summary["psnr"] == pytest.approx(run.data.metrics["sr-y/psnr"], abs=1e-12)
