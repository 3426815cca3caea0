"""The torchvision guard: libraries that import torchvision work after it."""

import importlib

import torch

from bench import _tvcompat


def test_lpips_and_torch_fidelity_import():
    lpips = importlib.import_module("lpips")
    fidelity = importlib.import_module("torch_fidelity")
    assert hasattr(lpips, "LPIPS")
    assert hasattr(fidelity, "calculate_metrics")


def test_torchvision_models_build_and_run():
    torchvision = importlib.import_module("torchvision")
    model = torchvision.models.squeezenet1_1(weights=None).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_apply_is_idempotent():
    first = _tvcompat.APPLIED
    assert _tvcompat.apply() is first  # a second definition of the schemas would raise


def test_nms_works_either_way():
    """Through the real extension, or through the guard's pure-torch kernel."""
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = torch.ops.torchvision.nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]  # box 1 overlaps box 0 with IoU 81/119 > 0.5


def test_guard_only_acts_when_the_extension_fails():
    extension = _tvcompat._extension_path()
    assert extension is not None
    try:
        torch.ops.load_library(str(extension))
        loads = True
    except (OSError, RuntimeError):
        loads = False
    assert _tvcompat.APPLIED is (not loads)
    assert (_tvcompat.REASON is None) is loads
