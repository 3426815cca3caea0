"""Expand a config into cells (dataset x method x seed) with every setting resolved.

A profile value of "paper" is replaced by the paper's value for the dataset's task
(``baselines.paper_settings``); CLI overrides (--iters, --steps) win over both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.config import Config, ProfileConfig
from bench.errors import UsageError


@dataclass(frozen=True)
class Cell:
    """One unit of work: everything needed to train, sample and score one method."""

    dataset: str
    method: str
    seed: int
    profile: str
    task: str
    protocol: str
    image_size: int
    batch_size: int
    grad_accumulation: int
    iterations: int
    steps: int
    lr: float
    unet_dim: int
    unet_mults: tuple[int, ...]
    ema_decay: float
    ema_every: int
    ema_start: int
    checkpoint_every: int
    eval_images: int
    eval_batch_size: int
    #: build_method options from the paper's settings for this task (sum_scale, ...)
    options: dict[str, Any] = field(default_factory=dict)
    eta: float = 0.0
    precision: str = "fp32"
    compile: bool = False
    audit: bool = True  # also score under every convention of the task (bench/conventions.py)
    eval_every: int = 0  # also score the EMA every N iterations (the learning curve); 0: never
    #: the data pipeline's settings (bench.data.pipeline.Pipeline as a dict): crops, flips,
    #: equalisation and test size, from the method's paper for this task by default
    pipeline: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.method}/seed{self.seed}/{self.profile}"

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the cell settings a profile gives as they are; the others (iterations, steps, lr and the
#: flags the command line overrides) are resolved per method in ``expand``
_AS_PROFILED = tuple(
    sorted(
        name
        for name in {f.name for f in dataclasses.fields(Cell)}
        & {f.name for f in dataclasses.fields(ProfileConfig)}
        if name not in ("iterations", "steps", "lr", "precision", "compile", "eval_every")
    )
)


def _settings(method: str, task: str, dataset: str) -> dict[str, Any]:
    """The paper's settings of ``method`` for ``task``; a method that does not apply to the
    task is one line naming both and the methods that do."""
    from baselines import METHODS, paper_settings

    try:
        return paper_settings(method, task)
    except ValueError as error:
        fitting = []
        for name in METHODS:
            try:
                paper_settings(name, task)
                fitting.append(name)
            except ValueError:
                pass
        raise UsageError(
            f"method {method} does not apply to dataset {dataset} (task {task}): {error}; "
            f"methods for {task}: {', '.join(fitting) or 'none'}"
        ) from None


def _paper(method: str, task: str, key: str, profile: str, dataset: str) -> Any:
    settings = _settings(method, task, dataset)
    if key not in settings:
        raise UsageError(
            f"profile '{profile}' asks for the paper's {key} for {method} on task '{task}', "
            f"but the paper does not state it; set {key} in [profiles.{profile}] or pass "
            f"--{'iters' if key == 'iterations' else key}"
        )
    return settings[key]


def expand(
    config: Config,
    iterations: int | None = None,
    steps: int | None = None,
    options: dict[str, Any] | None = None,
    precision: str | None = None,
    compile: bool | None = None,
    eval_every: int | None = None,
    pipeline: str = "paper",
) -> list[Cell]:
    """The grid of cells for ``config.run``, in a stable order (method, then seed).

    ``options`` (``--option KEY=VALUE``) override the paper's method options, e.g.
    ``sum_scale`` for RDDM's Table 10. ``pipeline`` (``--pipeline``): "paper" gives each
    method its own paper's data pipeline, "dataset" the manifest's, a method's name that
    method's for all (bench.data.pipeline).
    """
    from dataclasses import asdict

    from bench.data import get_dataset
    from bench.data.pipeline import choose_pipeline

    spec = get_dataset(config.run.dataset)
    profile = config.profile
    cells = []
    for method in config.run.methods:

        def resolve(key: str, value: Any, override: Any, method: str = method) -> Any:
            if override is not None:
                return override
            if value == "paper":
                return _paper(method, spec.task, key, config.run.profile, spec.name)
            return value

        method_iterations, method_lr = profile.budget(method)
        for seed in config.run.seeds:
            cells.append(
                Cell(
                    **{name: getattr(profile, name) for name in _AS_PROFILED},
                    dataset=spec.name,
                    method=method,
                    seed=seed,
                    profile=config.run.profile,
                    task=spec.task,
                    protocol=spec.protocol,
                    iterations=int(resolve("iterations", method_iterations, iterations)),
                    steps=steps
                    if steps is not None
                    else profile.capped_steps(method, int(resolve("steps", profile.steps, None))),
                    lr=float(resolve("lr", method_lr, None)),
                    precision=precision or profile.precision,
                    compile=profile.compile if compile is None else compile,
                    eval_every=profile.eval_every if eval_every is None else eval_every,
                    options={
                        **_settings(method, spec.task, spec.name).get("options", {}),
                        **(options or {}),
                    },
                    pipeline=asdict(
                        choose_pipeline(pipeline, method, spec.task, dict(spec.preprocess))
                    ),
                )
            )
    for cell in cells:
        check(cell)
    return cells


def check(cell: Cell) -> None:
    """Settings that would fail after training (an unknown -o option, a step count the
    method cannot sample in) stop here, before the first cell trains."""
    from baselines.base import check_settings

    try:
        check_settings(cell.method, cell.steps, cell.options)
    except (TypeError, ValueError, KeyError) as error:
        message = error.args[0] if error.args else str(error)
        raise UsageError(f"{cell.method} on {cell.dataset}: {message}") from None
