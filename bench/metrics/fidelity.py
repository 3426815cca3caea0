"""FID, IS and KID through torch-fidelity, fed uint8 tensors from memory.

One pass over both sets with the ``inception-v3-compat`` extractor (TF-exact resize to
299), loaded from ``<weights_dir>/weights-inception-2015-12-05-6726825d.pth`` through
``feature_extractor_weights_path``. Every value is recorded with the sample counts, the
reference set's identity and the settings, because FID depends on all of them
(docs/protocols.md §3).
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch

from bench import weights as weight_files
from bench.metrics.result import MetricResult

#: below this many samples the 2048-d feature covariance is rank-deficient (docs/protocols.md §3)
FID_MIN_SAMPLES = 2048
FIDELITY_METRICS = ("fid", "isc", "isc_std", "kid", "kid_std")


class Uint8Images(torch.utils.data.Dataset):
    """Items are uint8 CHW tensors, the only in-memory form torch-fidelity accepts."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"need uint8 (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}"
            )
        self.images = images.cpu()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def tensor_identity(images: torch.Tensor) -> str:
    """SHA-256 of the images' shape and bytes: names a reference set exactly."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def generation_metrics(
    generated: torch.Tensor,
    reference: torch.Tensor,
    weights_dir: Path,
    device: str = "cpu",
    reference_name: str = "in-memory tensor",
) -> MetricResult:
    """FID and KID of ``generated`` against ``reference``, and IS of ``generated``.

    Returns the protocol result shape: an empty ``per_image`` frame (these are set
    metrics), ``summary`` with fid / isc / isc_std / kid / kid_std, ``unavailable`` with the
    reason when the Inception weights are missing, and ``meta`` with counts and settings.
    """
    n_gen, n_ref = int(generated.shape[0]), int(reference.shape[0])
    meta: dict = {
        "tool": f"torch-fidelity {version('torch-fidelity')}",
        "feature_extractor": "inception-v3-compat",
        "resize": "TF-exact bilinear to 299 (inside the extractor)",
        "dtype": "uint8",
        "n_generated": n_gen,
        "n_reference": n_ref,
        "reference": reference_name,
        "reference_sha256": tensor_identity(reference),
        "warnings": [],
    }
    empty = pd.DataFrame({"name": []})
    try:
        verification = weight_files.verify("inception", weights_dir)
    except weight_files.WeightsMissing as missing:
        reason = str(missing)
        return MetricResult(empty, {}, dict.fromkeys(FIDELITY_METRICS, reason), meta)
    if min(n_gen, n_ref) < 2:
        reason = f"need at least 2 images per set, got {n_gen} generated and {n_ref} reference"
        return MetricResult(empty, {}, dict.fromkeys(FIDELITY_METRICS, reason), meta)

    settings = {
        "kid_subset_size": min(1000, n_gen, n_ref),
        "kid_subsets": 100,
        "isc_splits": min(10, n_gen),
        "rng_seed": 2020,
    }
    meta.update(settings)
    meta.update({f"weights_{k}": v for k, v in verification.as_dict().items()})
    if min(n_gen, n_ref) < FID_MIN_SAMPLES:
        meta["warnings"].append(
            f"FID on {n_gen} generated / {n_ref} reference images is biased and not comparable "
            f"to 50k-sample values (covariance rank-deficient below {FID_MIN_SAMPLES}); "
            "compare only at equal N and read KID instead"
        )
    if verification.state == "mismatch":
        meta["warnings"].append(
            f"{verification.path} is not the official Inception file (SHA-256 mismatch); "
            "values are not comparable to published ones"
        )

    import torch_fidelity  # after `import bench`: the torchvision guard is in place

    values = torch_fidelity.calculate_metrics(
        input1=Uint8Images(generated),
        input2=Uint8Images(reference),
        cuda=device.startswith("cuda"),
        isc=True,
        fid=True,
        kid=True,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(verification.path),
        cache=False,
        save_cpu_ram=True,
        verbose=False,
        **settings,
    )
    summary = {
        "fid": values["frechet_inception_distance"],
        "isc": values["inception_score_mean"],
        "isc_std": values["inception_score_std"],
        "kid": values["kernel_inception_distance_mean"],
        "kid_std": values["kernel_inception_distance_std"],
    }
    return MetricResult(empty, {k: float(v) for k, v in summary.items()}, {}, meta)
