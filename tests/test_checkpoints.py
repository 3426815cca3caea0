"""Official-format checkpoints load exactly: every tensor lands (strict) and the loaded network
equals the official forward, as read, with the same weights (tests/official_reference.py).

The files are built here from the official key names and shapes, with random weights."""

from __future__ import annotations

import json

import official_reference as official
import pytest
import torch
from typer.testing import CliRunner

from baselines import build_method
from bench.checkpoints import CheckpointError, load_method, read_checkpoint
from bench.cli import app

DIM, MULTS, T = 8, (1, 2), 1000


def _template_buffers(sum_scale: float) -> dict[str, torch.Tensor]:
    """The template's alpha_bar / beta2_bar from their closed forms (float32, as registered)."""
    t = torch.arange(1, T + 1, dtype=torch.float64)
    alpha_bar = t * (2 * T + 1 - t) / (T * (T + 1))
    beta2_bar = sum_scale * t * (t + 1) / (T * (T + 1))
    return {"alphas_cumsum": alpha_bar.float(), "betas2_cumsum": beta2_bar.float()}


def _prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


def _rddm_trainer_file(path, unets: dict[str, dict], ema_unets: dict[str, dict], extra=None):
    """A Trainer.save file: model = ResidualDiffusion state dict, ema = ema-pytorch's."""
    buffers = _template_buffers(0.01) | (extra or {})
    model, ema = dict(buffers), {"initted": torch.tensor(True), "step": torch.tensor(10)}
    for slot, state in unets.items():
        model |= _prefixed(state, f"model.{slot}." if slot else "model.")
    for slot, state in ema_unets.items():
        ema |= _prefixed(state, f"ema_model.model.{slot}." if slot else "ema_model.model.")
    ema |= _prefixed(buffers, "ema_model.") | _prefixed(model, "online_model.")
    torch.save({"step": 10, "model": model, "ema": ema, "opt": {}, "scaler": None}, path)
    return path


def _inputs(channels: int, size: int = 16, seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, size, size, generator=g), torch.tensor([0.0, 731.0])


def _close(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels", [6, 9])
def test_rddm_two_networks_load_ema_and_online_exactly(tmp_path, channels):
    online = {s: official.rddm_unet_state(channels, 3, DIM, MULTS, seed=i) for i, s in enumerate(("unet0", "unet1"))}  # fmt: skip
    ema = {s: official.rddm_unet_state(channels, 3, DIM, MULTS, seed=10 + i) for i, s in enumerate(("unet0", "unet1"))}  # fmt: skip
    path = _rddm_trainer_file(tmp_path / "model-80.pt", online, ema)
    info = read_checkpoint(path)
    assert info.format == "rddm-trainer" and info.method == "rddm"
    assert info.options["unet_dim"] == DIM and info.options["unet_mults"] == MULTS
    assert info.options["mask_channels"] == (1 if channels == 9 else 0)
    assert info.options["sum_scale"] == 0.01 and info.options["timesteps"] == T
    x, t = _inputs(channels)
    for weights, states in (("ema", ema), ("online", online)):
        method = load_method(path, weight_set=weights)
        with torch.no_grad():
            _close(method.nets["res"](x, t), official.rddm_unet(states["unet0"], x, t))
            _close(method.nets["noise"](x, t), official.rddm_unet(states["unet1"], x, t))


def test_rddm_shared_encoder_loads_exactly(tmp_path):
    state = official.rddm_unet_state(6, 3, DIM, MULTS, seed=3, shared_encoder=True)
    path = _rddm_trainer_file(tmp_path / "shared.pt", {"": state}, {"": state})
    method = load_method(path)
    assert method.name == "rddm-shared-encoder"
    x, t = _inputs(6)
    with torch.no_grad():
        ours, theirs = method.nets["joint"](x, t), official.rddm_unet(state, x, t)
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])


def test_rddm_one_network_asks_which_objective(tmp_path):
    state = official.rddm_unet_state(6, 3, DIM, MULTS, seed=4)
    path = _rddm_trainer_file(tmp_path / "one.pt", {"unet0": state}, {"unet0": state})
    assert read_checkpoint(path).candidates == ("rddm-sm-res", "rddm-sm-n")
    with pytest.raises(CheckpointError, match="rddm-sm-res or rddm-sm-n"):
        load_method(path)
    method = load_method(path, method="rddm-sm-n")
    x, t = _inputs(6)
    with torch.no_grad():
        _close(method.nets["noise"](x, t), official.rddm_unet(state, x, t))


def test_rddm_aosa_lambda_is_loaded(tmp_path):
    state = official.rddm_unet_state(6, 3, DIM, MULTS, seed=4)
    extra = {"alpha_res": torch.tensor([0.4871])}
    path = _rddm_trainer_file(tmp_path / "aosa.pt", {"unet0": state}, {"unet0": state}, extra)
    method = load_method(path)
    assert method.name == "rddm-aosa"
    assert float(method.aosa_lambda.detach()) == pytest.approx(0.4871)


@pytest.mark.parametrize("channels", [6, 8])
def test_resfusion_lightning_checkpoint_loads_exactly(tmp_path, channels):
    state = official.rddm_unet_state(channels, 3, DIM, MULTS, seed=6)
    hparams = {"T": 12, "noise_schedule": "LinearPro", "mode": "epsilon", "loss_type": "L2"}
    path = tmp_path / "epoch=9.ckpt"
    torch.save(
        {
            "epoch": 9,
            "global_step": 100,
            "state_dict": _prefixed(state, "denoising_module."),
            "hyper_parameters": hparams,
        },
        path,
    )
    info = read_checkpoint(path)
    assert info.format == "resfusion-lightning" and info.method == "resfusion"
    assert info.options["mask_channels"] == (1 if channels == 8 else 0)
    assert info.options["timesteps"] == 12 and info.options["schedule"] == "linear"
    method = load_method(path)
    x, t = _inputs(channels)
    t = torch.tensor([0.0, 4.0])
    with torch.no_grad():
        _close(method.nets["denoiser"](x, t), official.rddm_unet(state, x, t))


def test_sr3_generator_file_loads_exactly(tmp_path):
    state = official.sr3_unet_state(6, 3, inner=8, mults=(1, 2, 2), attn_res=(16,), image_size=32)
    betas = torch.linspace(1e-6, 1e-2, 2000, dtype=torch.float32)
    path = tmp_path / "I640000_E37_gen.pth"
    torch.save(_prefixed(state, "denoise_fn.") | {"betas": betas}, path)
    info = read_checkpoint(path)
    assert info.format == "sr3-generator" and info.options["attn_levels"] == (1,)
    assert info.options["timesteps"] == 2000
    method = load_method(path, image_size=32, norm_groups=4)
    assert method.nets["denoiser"].downs[3].attn is not None  # level 1 = 16 px of 32
    x = _inputs(6, size=32)[0]
    level = torch.tensor([0.3, 0.9])
    with torch.no_grad():
        _close(method.nets["denoiser"](x, level), official.sr3_unet(state, x, level, groups=4))


def test_the_sr3_64_512_structure_loads_with_its_16_groups_and_no_options(tmp_path):
    """Janspiry's sr_sr3_64_512 (multipliers 1,2,4,8,16, one res block, no attention) sets
    norm_groups = 16. A file of that structure is built with 16 groups, says so, and its
    output equals the official network's with 16 groups (another count differs)."""
    mults = (1, 2, 4, 8, 16)
    state = official.sr3_unet_state(6, 3, inner=16, mults=mults, res_blocks=1, attn_res=(), image_size=32)  # fmt: skip
    path = tmp_path / "I1000000_E200_gen.pth"
    torch.save(_prefixed(state, "denoise_fn."), path)
    info = read_checkpoint(path)
    assert info.options["norm_groups"] == 16 and info.options["attn_levels"] == ()
    assert any("sr_sr3_64_512" in note and "norm_groups = 16" in note for note in info.notes)
    method = load_method(path, image_size=32)  # nothing passed: the file's structure decides
    x = _inputs(6, size=32)[0]
    level = torch.tensor([0.3, 0.9])
    with torch.no_grad():
        ours = method.nets["denoiser"](x, level)
        _close(ours, official.sr3_unet(state, x, level, groups=16))
        assert not torch.allclose(ours, official.sr3_unet(state, x, level, groups=8), atol=1e-3)


def test_the_sr3_16_128_structure_is_named_with_the_default_32_groups(tmp_path):
    """sr_sr3_16_128 (multipliers 1,2,4,8,8, two res blocks, attention at 16 px of 128)
    leaves norm_groups at the code's default, 32; loaded with nothing passed, its output is
    the official network's."""
    state = official.sr3_unet_state(6, 3, inner=32, mults=(1, 2, 4, 8, 8), res_blocks=2, attn_res=(16,), image_size=128)  # fmt: skip
    path = tmp_path / "I830000_E32_gen.pth"
    torch.save(_prefixed(state, "denoise_fn."), path)
    info = read_checkpoint(path)
    assert info.options["norm_groups"] == 32 and info.options["attn_levels"] == (3,)
    assert any("sr_sr3_16_128" in note for note in info.notes)
    method = load_method(path, image_size=128)  # no options: exact to the official network
    x = _inputs(6, size=128)[0][:1]
    level = torch.tensor([0.6])
    with torch.no_grad():
        _close(method.nets["denoiser"](x, level), official.sr3_unet(state, x, level, groups=32))


def test_sr3_attention_follows_the_image_size_like_the_official_16_128():
    """sr_sr3_16_128: attn_res 16 at 128 px puts attention at the fourth level (128/2^3)."""
    method = build_method(
        "sr3", unet_dim=8, unet_mults=(1, 2, 4, 8, 8), attn_res=(16,), image_size=128, norm_groups=4
    )
    official_keys = official.sr3_unet_state(
        6, 3, inner=8, mults=(1, 2, 4, 8, 8), attn_res=(16,), image_size=128
    )
    official_attn = sorted(k for k in official_keys if ".attn.qkv" in k)
    ours = sorted(k for k in method.nets["denoiser"].state_dict() if ".attn.qkv" in k)
    assert ours == official_attn  # same modules, same indices (downs.7 at 16 px, mid, ups)
    assert "downs.7.attn.qkv.weight" in ours


def test_bench_checkpoint_round_trip(tmp_path):
    method = build_method("rddm-aosa", unet_dim=DIM, unet_mults=MULTS)
    with torch.no_grad():
        method.aosa_lambda.fill_(0.52)
    path = tmp_path / "seed0-smoke.pt"
    torch.save({"iteration": 3, "model": method.state_dict(), "ema": method.state_dict()}, path)
    info = read_checkpoint(path)
    assert info.format == "bench" and info.method == "rddm-aosa"
    loaded = load_method(path)
    assert float(loaded.aosa_lambda.detach()) == pytest.approx(0.52)
    for (k, a), b in zip(method.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_contradicting_shapes_name_the_tensor(tmp_path):
    unets = {s: official.rddm_unet_state(6, 3, DIM, MULTS, seed=i) for i, s in enumerate(("unet0", "unet1"))}  # fmt: skip
    path = _rddm_trainer_file(tmp_path / "m.pt", unets, unets)
    with pytest.raises(CheckpointError, match=r"tensor stem.weight .* \(8, 6, 7, 7\) .* \(16, 6, 7, 7\)"):  # fmt: skip
        load_method(path, unet_dim=16)
    with pytest.raises(CheckpointError, match="not sr3; run it with --methods rddm"):
        load_method(path, method="sr3")


def test_unknown_file_names_the_closest_format(tmp_path):
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {"net.weight": torch.zeros(1)}, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match="closest is resfusion-lightning.*denoising_module"):
        read_checkpoint(path)


def test_inspect_command_prints_the_format(tmp_path):
    unets = {s: official.rddm_unet_state(9, 3, DIM, MULTS, seed=i) for i, s in enumerate(("unet0", "unet1"))}  # fmt: skip
    path = _rddm_trainer_file(tmp_path / "m.pt", unets, unets)
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["format"] == "rddm-trainer" and record["method"] == "rddm"
    assert record["options"]["mask_channels"] == 1 and record["weight_sets"] == ["ema", "online"]
    bad = CliRunner().invoke(app, ["checkpoint", "inspect", str(tmp_path / "missing.pt")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_inspect_shows_what_a_bench_checkpoint_was_trained_under(tmp_path):
    """bench's own file stores the iteration and the training settings: inspect shows them."""
    method = build_method("rddm", unet_dim=DIM, unet_mults=MULTS)
    settings = {"dataset": "synth-shadow", "method": "rddm", "seed": 3, "profile": "smoke",
                "iterations": 250, "lr": 5e-4, "options": {"sum_scale": 0.01},
                "dataset_fingerprint": "ab" * 32, "bench_version": "0.1.0"}  # fmt: skip
    path = tmp_path / "seed3-smoke-0123456789.pt"
    torch.save({"iteration": 120, "model": method.state_dict(), "settings": settings}, path)
    result = CliRunner().invoke(app, ["checkpoint", "inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    stored = json.loads(result.output)["stored"]
    assert stored["iteration"] == 120 and stored["seed"] == 3 and stored["lr"] == 5e-4
    assert stored["dataset"] == "synth-shadow" and stored["profile"] == "smoke"
    assert stored["options"] == {"sum_scale": 0.01}
    table = CliRunner().invoke(app, ["checkpoint", "inspect", str(path)], terminal_width=200)
    assert "trained iteration" in table.output and "synth-shadow" in table.output
