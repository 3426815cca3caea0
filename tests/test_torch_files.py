"""Untrusted files never run code: crafted checkpoints in each official layout and in bench's own
are refused by every entry point (inspect, run --checkpoint, --resume, load_method) with one
line, and their payload does not run; legitimate files load without the trust switch.

Each crafted file carries a payload that creates a marker file when unpickled; the tests that
pass --trust-checkpoint show the payload is real (the marker appears)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import official_reference as official
import pytest
import torch
from typer.testing import CliRunner

from bench.checkpoints import load_method, read_checkpoint
from bench.cli import app
from bench.runner.seeding import rng_state, set_rng_state
from bench.torch_files import UntrustedFileError, load_torch_file

DIM, MULTS = 8, (1, 2)


class Payload:
    """Unpickled fully, runs ``touch marker`` in a subprocess."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.run, (["touch", str(self.marker)],))


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


def crafted(layout: str, path: Path, marker: Path) -> Path:
    """A file laid out like ``layout`` whose one non-tensor entry is the payload, where that
    format keeps its non-tensor values."""
    unet = official.rddm_unet_state(6, 3, DIM, MULTS, seed=1)
    if layout == "rddm-trainer":
        model = _prefixed(unet, "model.unet0.") | _prefixed(unet, "model.unet1.")
        ema = _prefixed(model, "ema_model.") | {"step": torch.tensor(3)}
        state = {"step": 3, "model": model, "ema": ema, "opt": {}, "scaler": Payload(marker)}
    elif layout == "resfusion-lightning":
        state = {
            "state_dict": _prefixed(unet, "denoising_module."),
            "hyper_parameters": Payload(marker),
        }
    elif layout == "sr3-generator":
        sr3 = official.sr3_unet_state(6, 3, inner=8, mults=(1, 2), attn_res=(), image_size=16)
        state = _prefixed(sr3, "denoise_fn.") | {"betas": Payload(marker)}
    else:  # bench's own: what `bench run` writes, with the payload as its settings
        from baselines import build_method

        method = build_method("rddm", unet_dim=DIM, unet_mults=MULTS)
        state = {"iteration": 3, "model": method.state_dict(), "settings": Payload(marker)}
    torch.save(state, path)
    return path


LAYOUTS = ("rddm-trainer", "resfusion-lightning", "sr3-generator", "bench")


def _one_line_refusal(output: str, path: Path) -> None:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    text = " ".join(output.split())
    assert "Traceback" not in output
    assert len(lines) <= 3, output  # one message (wrapped at most by the terminal width)
    assert "refused" in text and "subprocess.run" in text and "--trust-checkpoint" in text
    assert path.name in text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_load_method_refuses_a_crafted_file_and_the_payload_never_runs(tmp_path, layout):
    marker = tmp_path / "ran"
    path = crafted(layout, tmp_path / f"{layout}.pt", marker)
    with pytest.raises(UntrustedFileError, match=r"subprocess\.run.*--trust-checkpoint"):
        load_method(path)
    with pytest.raises(UntrustedFileError):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_inspect_refuses_a_crafted_file_in_one_line(tmp_path, layout):
    marker = tmp_path / "ran"
    path = crafted(layout, tmp_path / f"{layout}.pt", marker)
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(path)], terminal_width=240)
    assert result.exit_code == 2, result.output
    _one_line_refusal(result.output, path)
    assert not marker.exists()


def test_the_payload_is_real_and_the_trust_switch_runs_it(tmp_path):
    marker = tmp_path / "ran"
    path = crafted("resfusion-lightning", tmp_path / "r.ckpt", marker)
    result = CliRunner().invoke(
        app, ["checkpoint", "inspect", str(path), "--trust-checkpoint"], terminal_width=240
    )
    assert marker.exists()  # the file did run code: refusing it mattered
    assert "unpickling fully" in result.output  # the warning came first


def _run_config(tmp_path: Path) -> list[str]:
    from runner.test_run import short_config

    return ["-c", str(short_config(tmp_path))]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_run_checkpoint_refuses_a_crafted_file_before_any_work(tmp_path, layout):
    marker = tmp_path / "ran"
    path = crafted(layout, tmp_path / f"{layout}.pt", marker)
    method = "sr3" if layout == "sr3-generator" else "rddm"
    args = ["run", "synth-shadow", "-m", method, *_run_config(tmp_path), "--checkpoint", str(path)]
    result = CliRunner().invoke(app, args, terminal_width=240)
    assert result.exit_code == 2, result.output
    _one_line_refusal(result.output, path)
    assert not marker.exists()
    assert not (tmp_path / "results" / "mlflow.db").exists()  # stopped before any work


def test_resume_refuses_a_crafted_checkpoint_in_the_results_folder(tmp_path):
    """A shared results folder: another user's file where --resume looks for this cell's."""
    from bench.config import load_config
    from bench.runner.cells import expand
    from bench.runner.execute import checkpoint_path

    config_args = _run_config(tmp_path)
    config = load_config(Path(config_args[1]))
    config = dataclasses.replace(
        config, run=dataclasses.replace(config.run, methods=("rddm",), seeds=(0,))
    )
    (cell,) = expand(config, None, None, {}, None, None, None)
    marker = tmp_path / "ran"
    target = checkpoint_path(config.paths.results_dir, cell, config.tracking.experiment)
    target.parent.mkdir(parents=True)
    crafted("bench", target, marker)
    result = CliRunner().invoke(
        app, ["run", "-m", "rddm", "--seeds", "0", *config_args, "--resume"], terminal_width=240
    )
    assert result.exit_code == 2, result.output
    _one_line_refusal(result.output, target)
    # the stale-checkpoint check reads files of other settings: refused the same way
    target.rename(target.with_name(f"seed0-{cell.profile}-0000000000.pt"))
    result = CliRunner().invoke(
        app, ["run", "-m", "rddm", "--seeds", "0", *config_args, "--resume"], terminal_width=240
    )
    assert result.exit_code == 2, result.output
    _one_line_refusal(result.output, target.with_name(f"seed0-{cell.profile}-0000000000.pt"))
    assert not marker.exists()


def test_a_file_that_is_not_a_torch_pickle_is_refused_by_name(tmp_path):
    import pickle

    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"weights": Payload(tmp_path / "ran")}, protocol=4))
    with pytest.raises(UntrustedFileError, match="not a torch file of weights.*--trust"):
        load_torch_file(path)
    assert not (tmp_path / "ran").exists()


# -- legitimate files load without the switch ---------------------------------------------


@pytest.fixture
def lightning_module(monkeypatch):
    """Lightning's AttributeDict under the name lightning_fabric 2.x pickles it by, present
    only while the file is written (bench must read it without Lightning installed)."""
    names = ("lightning_fabric", "lightning_fabric.utilities", "lightning_fabric.utilities.data")
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class AttributeDict(dict):
        def __getattr__(self, key):
            return self[key]

        def __setattr__(self, key, value):
            self[key] = value

    AttributeDict.__module__ = names[-1]
    AttributeDict.__qualname__ = "AttributeDict"
    sys.modules[names[-1]].AttributeDict = AttributeDict
    return AttributeDict


def test_a_full_lightning_checkpoint_loads_without_lightning_or_trust(tmp_path, lightning_module):
    """What Resfusion's Trainer writes (Lightning 2.1): hyper-parameters as an AttributeDict,
    optimizer and LR-scheduler states, the EMA callback's state, ModelCheckpoint's with a
    numpy score, loops and the version string."""
    state = official.rddm_unet_state(6, 3, DIM, MULTS, seed=6)
    hparams = lightning_module(T=12, noise_schedule="LinearPro", mode="epsilon", loss_type="L2")
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10)
    path = tmp_path / "epoch=9-EMA.ckpt"
    torch.save(
        {
            "epoch": 9,
            "global_step": 100,
            "pytorch-lightning_version": "2.1.1",
            "state_dict": _prefixed(state, "denoising_module."),
            "hyper_parameters": hparams,
            "optimizer_states": [optimizer.state_dict()],
            "lr_schedulers": [scheduler.state_dict()],
            "callbacks": {
                "EMA": {"cur_step": 100, "ema_weights": list(state.values())},
                "ModelCheckpoint{'monitor': 'val_PSNR'}": {
                    "best_model_score": torch.tensor(21.5),
                    "current_score": np.float64(21.5),
                    "best_k_models": {"a.ckpt": np.float32(21.5)},
                },
            },
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"current": 9}}},
        },
        path,
    )
    for name in [n for n in sys.modules if n.startswith("lightning_fabric")]:
        del sys.modules[name]  # not installed when bench reads it
    info = read_checkpoint(path)
    assert info.options["timesteps"] == 12 and info.options["schedule"] == "linear"
    method = load_method(path)
    for key, tensor in method.nets["denoiser"].state_dict().items():
        assert tensor.shape == info.states["online"]["denoiser"][key].shape
    x, t = torch.randn(2, 6, 16, 16), torch.tensor([0.0, 4.0])
    with torch.no_grad():
        torch.testing.assert_close(
            method.nets["denoiser"](x, t), official.rddm_unet(state, x, t), rtol=1e-5, atol=1e-5
        )


def test_an_rddm_trainer_file_with_optimizer_and_scaler_state_loads(tmp_path):
    """Trainer.save with two Adam states (opt0, opt1), the AMP scaler's state and a version."""
    unets = {s: official.rddm_unet_state(9, 3, DIM, MULTS, seed=i) for i, s in enumerate("ab")}
    model = _prefixed(unets["a"], "model.unet0.") | _prefixed(unets["b"], "model.unet1.")
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5}
    scaler |= {"growth_interval": 2000, "_growth_tracker": 0}
    ema = _prefixed(model, "ema_model.") | _prefixed(model, "online_model.")
    ema |= {"initted": torch.tensor(True), "step": torch.tensor(10)}
    path = tmp_path / "model-80.pt"
    torch.save(
        {
            "step": 10,
            "model": model,
            "opt0": optimizer.state_dict(),
            "opt1": optimizer.state_dict(),
            "ema": ema,
            "scaler": scaler,
            "version": "1.5.4",
        },
        path,
    )
    method = load_method(path)
    loaded = method.nets["res"].state_dict()
    assert torch.equal(loaded["stem.weight"], unets["a"]["init_conv.weight"])


def test_bench_checkpoints_need_no_allow_list(tmp_path):
    """What training saves (random streams included) is tensors and primitive values: torch's
    own weights-only reader takes it with no allow-listed name."""
    from baselines import build_method
    from bench.runner.ema import EMA
    from bench.runner.train import TrainResult, checkpoint_state, random_streams

    method = build_method("rddm", unet_dim=DIM, unet_mults=MULTS)
    optimizer = torch.optim.Adam(method.parameters())
    ema = EMA(method, 0.99, 1, 0)
    streams = [random_streams(torch.Generator().manual_seed(0))]
    result = TrainResult(3, losses=[(1, {"loss": 0.5})])
    path = tmp_path / "seed0-smoke.pt"
    torch.save(checkpoint_state(method, ema, optimizer, streams, result), path)
    state = torch.load(path, weights_only=True)  # no safe_globals
    assert state["iteration"] == 3
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []


def test_random_streams_restore_from_new_and_older_checkpoints():
    """The numpy stream is stored as a list now; older files hold numpy's array: both restore."""
    np.random.seed(3)  # noqa: NPY002
    new = rng_state()
    expected = np.random.random(4)  # noqa: NPY002
    set_rng_state(new)
    assert np.array_equal(np.random.random(4), expected)  # noqa: NPY002
    kind, keys, *rest = new["numpy"]
    set_rng_state(new | {"numpy": (kind, np.asarray(keys, np.uint32), *rest)})
    assert np.array_equal(np.random.random(4), expected)  # noqa: NPY002


def test_an_older_bench_checkpoint_with_numpy_state_loads(tmp_path):
    np.random.seed(5)  # noqa: NPY002
    path = tmp_path / "old.pt"
    torch.save({"iteration": 1, "streams": {"rng": {"numpy": np.random.get_state()}}}, path)  # noqa: NPY002
    state = load_torch_file(path)
    assert state["streams"]["rng"]["numpy"][1].dtype == np.uint32
