"""Generation protocols: FID / IS / KID of a generated set against a reference set.

Both use torch-fidelity (``inception-v3-compat``, TF-exact resize), the tool docs/protocols.md
§3 prescribes. The papers used other tools (RDDM: pytorch-fid 0.3.0 for FID and
torchvision-Inception IS; Resfusion: torchmetrics FID), so values match theirs only up to
those tools' differences; ``meta`` says so. The ``target`` passed to ``evaluate`` is the
reference set; the two sets need not have the same size or order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from bench.metrics.fidelity import generation_metrics
from bench.metrics.result import MetricResult
from bench.protocols.base import PROTOCOLS, Protocol


class _Generation(Protocol):
    set_metrics = True
    reference: ClassVar[str]
    paper_tool: ClassVar[str]

    def evaluate(self, pred, target, mask=None, names=None) -> MetricResult:
        self._check_inputs(pred, target, None, names)
        result = generation_metrics(pred, target, self.weights_dir, self.device, self.reference)
        names = list(names) if names is not None else [f"{i:05d}" for i in range(len(pred))]
        result.per_image = pd.DataFrame({"name": names})
        result.meta = {
            "protocol": self.name,
            "table": self.table,
            "n_images": len(names),
            **self.conventions(),
            **result.meta,
        }
        return result

    def conventions(self) -> dict[str, Any]:
        return {
            "paper_tool": self.paper_tool,
            "comparability": "torch-fidelity values; the paper's tool differs (see paper_tool)",
        }


@PROTOCOLS.register("celeba")
class Celeba(_Generation):
    """CelebA generation (RDDM Tables 1-2 at 64x64, Table 3(a) at 256x256).

    Reference for 64x64: the ``list_eval_partition`` test split, 128x128 crop centred at
    (column 89, row 121) resized to 64; for 256x256: "kaggle-CelebA images 27000-49999"
    (open whether CelebA or CelebA-HQ). The paper used 50,000 generated images.
    """

    name = "celeba"
    description = "CelebA generation: FID / IS / KID (torch-fidelity) against a reference set"
    table = "RDDM Tables 1 and 2 (CelebA 64x64) and Table 3(a) (CelebA 256x256)"
    reference = "CelebA reference set (64: eval-partition test split; 256: images 27000-49999)"
    paper_tool = "pytorch-fid 0.3.0 (FID); sbarratt inception-score, torchvision Inception (IS)"


@PROTOCOLS.register("cifar10")
class Cifar10(_Generation):
    """CIFAR-10 generation (Resfusion): 50,000 generated images against the 50,000 training
    images at 32x32."""

    name = "cifar10"
    description = "CIFAR-10 generation: FID / IS / KID (torch-fidelity) against the train set"
    table = "Resfusion CIFAR-10 FID table (10/20/50/100 steps)"
    reference = "CIFAR-10 training set (50,000 images)"
    paper_tool = "torchmetrics FrechetInceptionDistance(normalize=True)"
