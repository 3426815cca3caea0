"""Guard that lets torchvision import on CPU-only torch.

The torchvision wheel available on CPU machines is a CUDA build: its compiled
extension ``_C.so`` links ``libtorch_cuda.so``, which CPU torch lacks.
torchvision swallows that load error and then registers a fake kernel for
``torchvision::nms``, whose schema was never defined, so ``import torchvision``
raises ``RuntimeError: operator torchvision::nms does not exist``. That breaks
lpips and torch-fidelity, which import torchvision.

:func:`apply` must run before anything imports torchvision. It first tries to
load the real extension; only when that fails does it define the two missing
operator schemas (and a pure-torch CPU ``nms`` kernel) so that the import
succeeds. Where the extension loads (a matching CUDA setup, or a future CPU
build) it changes nothing. See docs/environment.md §3.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import torch

#: True once the schemas were defined by this module (the extension did not load).
APPLIED = False
#: Why the shim was needed, for ``bench env``; None where the real extension loaded.
REASON: str | None = None
_checked = False
_library: torch.library.Library | None = None  # kept alive: dropping it removes the ops


def _extension_path() -> Path | None:
    """Locate torchvision's ``_C`` extension without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = Path(folder) / f"_C{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in pure torch (the semantics of torchvision.ops.nms)."""
    order = scores.argsort(descending=True)
    boxes = dets[order]
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    ix1 = torch.maximum(x1[:, None], x1[None, :])
    iy1 = torch.maximum(y1[:, None], y1[None, :])
    ix2 = torch.minimum(x2[:, None], x2[None, :])
    iy2 = torch.minimum(y2[:, None], y2[None, :])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    iou = inter / (areas[:, None] + areas[None, :] - inter)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=dets.device)
    keep = []
    for i in range(len(order)):  # greedy by definition; boxes are few
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=dets.device)]


def apply() -> bool:
    """Make ``import torchvision`` work; return True if the schemas had to be defined.

    Idempotent: defining the schemas twice would raise, so the check runs once per process.
    """
    global APPLIED, REASON, _checked, _library
    if _checked:
        return APPLIED
    _checked = True
    extension = _extension_path()
    if extension is None:
        return False  # torchvision is not installed, or ships no extension: nothing to fix
    try:
        torch.ops.load_library(str(extension))
        return False
    except (OSError, RuntimeError) as error:
        REASON = f"{extension.name} did not load: {str(error).splitlines()[0]}"
    _library = torch.library.Library("torchvision", "DEF")
    _library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _library.impl("nms", _nms, "CPU")
    APPLIED = True
    return True
