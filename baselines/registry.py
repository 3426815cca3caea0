"""The method registry: names users type -> factories and the options each name fixes.

Torch-free on purpose: a factory may be given as ``"module:attribute"`` and is imported only
when a method is built, so listing or checking names (the CLI's start-up, config checks)
never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: name -> (factory or "module:attribute", fixed options of that name)
_ENTRIES: dict[str, tuple[Callable[..., Any] | str, dict[str, Any]]] = {}


def register(name: str, factory: Callable[..., Any] | str, **fixed: Any) -> None:
    """Register ``factory`` (a class or ``"package.module:Class"``) under ``name``;
    ``fixed`` are the options the name implies (``rddm-sm-res`` fixes ``objective="res"``)."""
    _ENTRIES[name] = (factory, fixed)


def registered_names() -> list[str]:
    return sorted(_ENTRIES)


def resolve(name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """(factory, fixed options) of ``name``, importing the factory on first use."""
    if name not in _ENTRIES:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(registered_names())}")
    factory, fixed = _ENTRIES[name]
    if isinstance(factory, str):
        module, attribute = factory.split(":")
        factory = getattr(importlib.import_module(module), attribute)
        _ENTRIES[name] = (factory, fixed)
    return factory, fixed
