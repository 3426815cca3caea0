"""The registry, build_method's errors and the per-task paper settings."""

import pytest
import torch

import baselines
from baselines import METHODS, TASKS, build_method, paper_settings

NAMES = [
    "rddm",
    "rddm-sm-res",
    "rddm-sm-n",
    "rddm-1net",
    "rddm-shared-encoder",
    "rddm-aosa",
    "resfusion",
    "sr3",
    "ddim",
]


def test_registry_names():
    assert set(NAMES) <= set(METHODS)
    assert baselines.registered_names() == sorted(METHODS)


@pytest.mark.parametrize("name", NAMES)
def test_each_method_trains_and_samples_through_the_interface(name):
    method = METHODS[name](unet_dim=8, unet_mults=(1, 2))
    assert isinstance(method, baselines.Method) and method.name == name
    nets = method.networks()
    assert nets and all(isinstance(n, torch.nn.Module) for n in nets.values())
    for key, net in nets.items():
        out = net(*method.example_inputs(key, 2, 16))
        assert (out[0] if isinstance(out, tuple) else out).shape[0] == 2
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    parts = method.loss({"target": x0, "input": x0.flip(-1)}, torch.Generator().manual_seed(0))
    parts["loss"].backward()
    assert all(torch.isfinite(v).all() for v in parts.values())
    steps = {"resfusion": 5}.get(name, 2)

    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        if method.kind == "generation":
            return method.sample(None, shape=(2, 3, 16, 16), steps=steps, eta=1.0, generator=g)
        return method.sample(x0, steps=steps, generator=g)  # restoration: eta 0, as the code

    out = sample(0)
    assert out.shape == x0.shape and torch.isfinite(out).all()
    assert torch.equal(out, sample(0))  # bitwise reproducible on CPU
    assert not torch.equal(out, sample(1))
    assert set(method.state_dict()) >= {
        f"nets.{k}." + n for k in nets for n in list(nets[k].state_dict())[:1]
    }


@pytest.mark.parametrize("name", ["rddm", "resfusion", "sr3"])
def test_masks_are_converted_internally(name):
    method = build_method(name, mask_channels=1, unet_dim=8, unet_mults=(1, 2))
    x0 = torch.rand(1, 3, 16, 16) * 2 - 1
    mask = (torch.rand(1, 1, 16, 16) > 0.5).float()
    method.loss({"target": x0, "input": x0, "mask": mask})["loss"].backward()
    steps = 5 if name == "resfusion" else 2
    assert method.sample(x0, mask=mask, steps=steps, generator=torch.Generator()).shape == x0.shape


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError, match="rddm-sm-res"):
        build_method("rdm")


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="'sumscale'"):
        build_method("rddm", sumscale=0.1)
    with pytest.raises(TypeError, match="fixes objective"):
        build_method("rddm-sm-res", objective="noise")


@pytest.mark.parametrize("task", TASKS)
def test_rddm_paper_settings_build(task):
    settings = paper_settings("rddm", task)
    assert {"steps", "iterations", "lr", "options"} <= settings.keys()
    build_method("rddm", unet_dim=8, unet_mults=(1, 2), **settings["options"])


def test_paper_settings_values():
    istd = paper_settings("rddm", "shadow-removal")
    assert istd["steps"] == 5 and istd["iterations"] == 80_000 and istd["lr"] == 8e-5
    assert istd["options"]["sum_scale"] == 0.01 and istd["options"]["loss"] == "l1"
    lol = paper_settings("rddm", "low-light")
    assert lol["steps"] == 2 and lol["options"] == {
        "sum_scale": 1.0,
        "objective": "res",
        "loss": "l1",
    }
    assert "objective" not in paper_settings("rddm-sm-res", "low-light")["options"]
    gen = paper_settings("rddm-sm-n", "generation")
    assert gen["options"]["schedule"] == "ddim-linear" and gen["lr"] == 2e-4
    res = paper_settings("resfusion", "shadow-removal")
    assert res["steps"] == 5 and res["lr"] == pytest.approx(1.1e-4) and "iterations" not in res
    assert paper_settings("sr3", "shadow-removal")["steps"] == 100
    with pytest.raises(ValueError, match="no inpainting"):
        paper_settings("resfusion", "inpainting")
    with pytest.raises(ValueError, match="unknown task"):
        paper_settings("rddm", "denoising")
