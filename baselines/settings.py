"""The tasks bench knows, and each method's paper settings per task.

``paper_settings(name, task)`` returns the sampling steps, training iterations, learning
rate and the ``build_method`` options the papers used, from the settings each method
registered beside its class (baselines/registry.py; the papers' methods keep theirs in their
own files). A value the sources do not state is left out (with the reason under "notes"); a
task a method was never run on raises ValueError.
"""

from collections.abc import Mapping
from typing import Any

TASKS = (
    "shadow-removal",
    "low-light",
    "deraining",
    "deblurring",
    "super-resolution",
    "generation",
    "inpainting",
    "translation",
)
#: the tasks whose data pairs a degraded input with its clean target
RESTORATION_TASKS = ("shadow-removal", "low-light", "deraining", "deblurring", "super-resolution")


def paper_settings(name: str, task: str) -> dict[str, Any]:
    """Keys: "steps", "iterations" (when stated), "lr", "options", "notes"."""
    from baselines.registry import declared_settings

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    declared = declared_settings(name)
    if declared is None:
        raise KeyError(f"no settings for {name!r}: register it with settings={{task: {{...}}}}")
    if not isinstance(declared, Mapping):  # a function of (name, task)
        return declared(name, task)
    if task not in declared:
        raise ValueError(f"{name} declares settings for {', '.join(sorted(declared))}, not {task}")
    settings = dict(declared[task])
    if "steps" not in settings:
        raise ValueError(f"{name}'s settings for {task} give no 'steps'")
    return {"options": {}, "notes": [], **settings}
