"""The methods: RDDM, Resfusion, SR3 and DDIM as pure torch math and networks.

No file or tracking I/O lives here; the harness in ``bench`` does that. Everything the runner
needs goes through ``build_method``, ``paper_settings`` and the ``Method`` interface.
Importing this package does not import torch: the classes load when a method is built
(``baselines.registry``), so the CLI starts fast.
"""

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from baselines.registry import register, registered_names
from baselines.settings import TASKS, paper_settings

__all__ = [
    "METHODS",
    "TASKS",
    "Method",
    "build_method",
    "paper_settings",
    "registered_names",
]

#: registry name -> (class, the options the name fixes); each class's module also holds the
#: paper settings (``paper_settings(name, task)``) beside it
_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "rddm": ("baselines.rddm:RDDM", {"network": "2net"}),  # SM-Res-N-2Net, the official setup
    "rddm-sm-res": ("baselines.rddm:RDDM", {"objective": "res"}),
    "rddm-sm-n": ("baselines.rddm:RDDM", {"objective": "noise"}),
    "rddm-1net": ("baselines.rddm:RDDM", {"objective": "res_noise", "network": "1net"}),
    "rddm-shared-encoder": (
        "baselines.rddm:RDDM",
        {"objective": "res_noise", "network": "shared_encoder"},
    ),
    "rddm-aosa": ("baselines.rddm:RDDM", {"objective": "aosa"}),
    "resfusion": ("baselines.resfusion:Resfusion", {}),
    "sr3": ("baselines.sr3:SR3", {}),
    "ddim": ("baselines.ddim:DDIM", {}),
}
for _name, (_factory, _fixed) in _VARIANTS.items():
    _module = _factory.split(":")[0]
    register(_name, _factory, settings=f"{_module}:paper_settings", **_fixed)


def __getattr__(name: str) -> Any:
    """``Method`` and ``build_method`` live in ``baselines.base``, which imports torch."""
    if name in ("Method", "build_method"):
        from baselines import base

        return getattr(base, name)
    raise AttributeError(f"module 'baselines' has no attribute {name!r}")


def _build(name: str, **options: Any) -> Any:
    from baselines.base import build_method

    return build_method(name, **options)


class _Methods(Mapping[str, Callable[..., Any]]):
    """The names users type (``rddm``, ``rddm-sm-res``, ``resfusion``, ... and any method a
    plug-in registered) -> method factories; read from the registry on every use."""

    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name not in registered_names():
            raise KeyError(name)
        return partial(_build, name)

    def __iter__(self) -> Iterator[str]:
        return iter(registered_names())

    def __len__(self) -> int:
        return len(registered_names())


METHODS: Mapping[str, Callable[..., Any]] = _Methods()
