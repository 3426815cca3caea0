"""Weights files generated for offline tests, saved under the official file names.

They go through the same loading code as the real files (bench.metrics.perceptual,
bench.metrics.fidelity). Their hashes do not match the official prefixes, which the
tests also rely on.
"""

from pathlib import Path

import torch

import bench  # noqa: F401  (torchvision guard before torchvision / torch-fidelity)
from bench.weights import weight_path


def write_random_alexnet(weights_dir: Path) -> Path:
    """A full random AlexNet state dict (244 MB), as torchvision's model zoo file holds."""
    import torchvision

    torch.manual_seed(0)
    path = weight_path("alexnet", weights_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def write_random_inception(weights_dir: Path) -> Path:
    """torch-fidelity's Inception with conv weights re-initialised by kaiming_normal_.

    Default initialisation gives features of ~1e-8 and FID exactly 0 (environment.md §4).
    """
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as fe

    torch.manual_seed(0)
    # Build the module without any weights: skip the download and the strict load.
    with (
        mock.patch.object(fe, "load_state_dict_from_url", return_value={}),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"])
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = weight_path("inception", weights_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
