"""The method registry: names users type -> factories, the options each name fixes, and
the settings of a method that is not one of the papers' (a third party's).

Torch-free on purpose: a factory may be given as ``"module:attribute"`` and is imported only
when a method is built, so listing or checking names (the CLI's start-up, config checks)
never imports torch.

Methods of your own plug in without a fork (docs/methods.md, "Your own method"):

* an installed package declares an entry point in the group ``bench.methods``, whose value
  is a module (importing it calls :func:`register`) or a function (called once, with no
  arguments, it calls :func:`register`);
* ``bench run --methods-from FILE.py`` imports one file that calls :func:`register`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "bench.methods"

#: name -> (factory or "module:attribute", fixed options, settings or "module:attribute")
_ENTRIES: dict[str, tuple[Callable[..., Any] | str, dict[str, Any], Any]] = {}
_entry_points_loaded = False
_files_loaded: dict[Path, str] = {}


Settings = Mapping[str, Mapping[str, Any]] | Callable[[str, str], dict[str, Any]]


def register(
    name: str,
    factory: Callable[..., Any] | str,
    *,
    settings: Settings | str | None = None,
    **fixed: Any,
) -> None:
    """Register ``factory`` (a class or ``"package.module:Class"``) under ``name``.

    ``fixed`` are the options the name implies (``rddm-sm-res`` fixes ``objective="res"``).
    ``settings`` maps each task the method applies to (``"shadow-removal"``, ...) to its
    settings: ``steps``, and optionally ``iterations``, ``lr``, ``options`` (the class's
    keyword arguments) and ``notes``; or it is a function of (name, task) returning them, as
    the papers' methods define beside their classes. Like the factory it may be given as
    ``"module:attribute"``. A name registered again with another factory is an error."""
    if name in _ENTRIES and _ENTRIES[name][0] != factory:
        raise ValueError(f"method {name!r} is registered twice; choose another name")
    _ENTRIES[name] = (factory, fixed, settings)


def registered_names(plugins: bool = True) -> list[str]:
    """Every registered method; ``plugins=False``: without loading the installed plugins'
    entry points (the names bench ships, for help texts)."""
    if plugins:
        load_entry_points()
    return sorted(_ENTRIES)


def resolve(name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """(factory, fixed options) of ``name``, importing the factory on first use."""
    load_entry_points()
    if name not in _ENTRIES:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(registered_names())}")
    factory, fixed, settings = _ENTRIES[name]
    if isinstance(factory, str):
        factory = _import(factory)
        _ENTRIES[name] = (factory, fixed, settings)
    return factory, fixed


def fixed_options(name: str) -> dict[str, Any]:
    """The options the registry name fixes (``rddm-sm-res``: objective)."""
    load_entry_points()
    return dict(_ENTRIES[name][1]) if name in _ENTRIES else {}


def declared_settings(name: str) -> Settings | None:
    """The settings ``name`` registered with (a mapping per task or a function of (name,
    task)), imported on first use; None for an unknown name or one registered without."""
    load_entry_points()
    if name not in _ENTRIES:
        return None
    factory, fixed, settings = _ENTRIES[name]
    if isinstance(settings, str):
        settings = _import(settings)
        _ENTRIES[name] = (factory, fixed, settings)
    return settings


def _import(reference: str) -> Any:
    module, attribute = reference.split(":")
    return getattr(importlib.import_module(module), attribute)


def load_entry_points() -> None:
    """Import the ``bench.methods`` entry points of installed packages, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as error:  # a broken plug-in names itself, and stops nothing else
            raise ImportError(
                f"the {ENTRY_POINT_GROUP} entry point {point.name!r} ({point.value}) failed to "
                f"load: {type(error).__name__}: {error}"
            ) from error
        if callable(loaded) and not isinstance(loaded, type):
            loaded()


def load_file(path: Path) -> str:
    """Import one Python file that registers methods (``--methods-from``); once per file.
    Returns the module name it was imported as."""
    path = Path(path).resolve()
    if path in _files_loaded:
        return _files_loaded[path]
    if not path.is_file() or path.suffix != ".py":
        raise FileNotFoundError(f"{path}: --methods-from needs an existing .py file")
    module_name = f"bench_methods_{len(_files_loaded)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module  # workers unpickle classes by this name
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    _files_loaded[path] = module_name
    return module_name
