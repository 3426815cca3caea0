"""The methods: RDDM, Resfusion, SR3 and DDIM as pure torch math and networks.

No file or tracking I/O lives here; the harness in ``bench`` does that. Everything the runner
needs goes through ``build_method``, ``paper_settings`` and the ``Method`` interface.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

from baselines.base import Method, build_method, register, registered_names
from baselines.ddim import DDIM
from baselines.rddm import RDDM
from baselines.resfusion import Resfusion
from baselines.settings import TASKS, paper_settings
from baselines.sr3 import SR3

__all__ = [
    "METHODS",
    "TASKS",
    "Method",
    "build_method",
    "paper_settings",
    "registered_names",
]

_VARIANTS: dict[str, tuple[Callable[..., Method], dict[str, Any]]] = {
    "rddm": (RDDM, {"network": "2net"}),  # SM-Res-N-2Net, the official restoration setup
    "rddm-sm-res": (RDDM, {"objective": "res"}),
    "rddm-sm-n": (RDDM, {"objective": "noise"}),
    "rddm-1net": (RDDM, {"objective": "res_noise", "network": "1net"}),
    "rddm-shared-encoder": (RDDM, {"objective": "res_noise", "network": "shared_encoder"}),
    "rddm-aosa": (RDDM, {"objective": "aosa"}),
    "resfusion": (Resfusion, {}),
    "sr3": (SR3, {}),
    "ddim": (DDIM, {}),
}
for _name, (_factory, _fixed) in _VARIANTS.items():
    register(_name, _factory, **_fixed)

#: The names users type (``rddm``, ``rddm-sm-res``, ``resfusion``, ...) -> method factories.
METHODS: dict[str, Callable[..., Any]] = {name: partial(build_method, name) for name in _VARIANTS}
