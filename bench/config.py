"""Typed, validated configuration from bench.toml and CLI flags.

The packaged defaults (a copy of the repository's bench.toml) are read first; the
user's file is merged over them key by key, then CLI overrides. The merged tree is
checked against the dataclasses below: an unknown key, a wrong type or an unknown
name raises :class:`~bench.errors.ConfigError` naming the key, the file and the
valid choices, before anything runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import typed_toml
from bench.errors import ConfigError, choices, did_you_mean
from bench.typed_toml import at_least, between

PACKAGED_DEFAULTS = Path(__file__).with_name("defaults.toml")
DEFAULT_CONFIG_NAME = "bench.toml"

Paper = Literal["paper"]


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = ""
    experiment: str = "bench"
    retry_minutes: float = 10.0


@dataclass(frozen=True)
class PathsConfig:
    data_root: Path = Path("data")
    weights_dir: Path = Path("weights")
    results_dir: Path = Path("results")
    user_datasets: Path = Path("user-datasets")  # manifests `bench data add` writes


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "synth-shadow"
    methods: tuple[str, ...] = ("rddm", "resfusion", "sr3")
    seeds: tuple[int, ...] = (0,)
    profile: str = "smoke"
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True)
class SlurmConfig:
    """How `bench run --executor slurm` submits cells (one job-array task per cell)."""

    cluster: Literal["slurm", "local"] = "slurm"  # local: the same path, no cluster
    partition: str = ""  # empty: the cluster's default partition
    time_minutes: int = 720
    gpus_per_cell: int = 1  # above 1: one DDP process per GPU inside the cell's job
    cpus_per_gpu: int = 8
    mem_gb: int = 32
    max_parallel: int = 0  # most cells running at once; 0: no limit
    #: further sbatch options, e.g. {account = "proj", qos = "high", constraint = "a100"}
    sbatch: dict[str, str] = field(default_factory=dict)
    folder: str = ""  # job scripts and logs, on a shared filesystem; empty: <results_dir>/slurm
    requeue: bool = True  # a failed node or a preemption requeues the job; false: it fails


@dataclass(frozen=True)
class MethodBudget:
    """One method's budget relative to its profile's: the profile's iterations and lr times
    these factors, so a file that changes the profile's iterations moves every method."""

    iterations_scale: float = 1.0
    lr_scale: float = 1.0
    #: sampling steps at most (None: the profile's); a --steps flag is never capped
    max_steps: int | None = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class ProfileConfig:
    """A training and sampling budget. "paper" takes the paper's value for the task."""

    image_size: int = field(metadata=at_least(8))
    batch_size: int = field(metadata=at_least(1))
    grad_accumulation: int = field(metadata=at_least(1))
    iterations: int | Paper = field(metadata=at_least(1))
    steps: int | Paper = field(metadata=at_least(1))
    unet_dim: int = field(metadata=at_least(1))
    unet_mults: tuple[int, ...] = field(metadata=at_least(1))
    lr: float | Paper
    ema_decay: float = field(metadata=between(0, 1))
    ema_every: int = field(metadata=at_least(1))
    ema_start: int = field(metadata=at_least(0))
    checkpoint_every: int = field(metadata=at_least(1))
    eval_images: int = field(metadata=at_least(0))  # 0: the whole test split
    eval_batch_size: int = field(metadata=at_least(1))
    #: [profiles.NAME.methods.METHOD]: per-method factors on iterations and lr, e.g. for
    #: SR3, whose noise predictor needs far more iterations than the residual methods
    methods: dict[str, MethodBudget] = field(default_factory=dict)
    #: the networks' precision: "fp32", or "bf16" autocast (GPUs, CPUs with AMX/AVX-512 BF16)
    precision: Literal["fp32", "bf16"] = "fp32"
    #: torch.compile the networks (falls back to eager, with the reason, if it cannot)
    compile: bool = False
    #: score every run under each convention of its task too (the protocol audit)
    audit: bool = True
    #: also sample and score the EMA every N iterations: the learning curve (0: at the end)
    eval_every: int = field(default=0, metadata=at_least(0))

    def budget(self, method: str) -> tuple[int | Paper, float | Paper]:
        """(iterations, lr) for ``method``: the profile's, times its factors where set.
        A "paper" value is the paper's and is never scaled (load_config refuses that)."""
        own = self.methods.get(method, MethodBudget())
        iterations = self.iterations
        if iterations != "paper":
            iterations = max(1, round(iterations * own.iterations_scale))
        lr = self.lr if self.lr == "paper" else self.lr * own.lr_scale
        return iterations, lr

    def capped_steps(self, method: str, steps: int) -> int:
        """``steps`` (the profile's or the paper's) within ``method``'s ``max_steps``."""
        cap = self.methods.get(method, MethodBudget()).max_steps
        return steps if cap is None else min(steps, cap)


@dataclass(frozen=True)
class Config:
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    profiles: dict[str, ProfileConfig] = field(default_factory=dict)
    #: the file the values came from (the packaged defaults when no file was found)
    source: Path = field(default=PACKAGED_DEFAULTS, metadata=typed_toml.not_in_file())

    @property
    def profile(self) -> ProfileConfig:
        """The profile selected by ``run.profile``."""
        return self.profiles[self.run.profile]

    def tracking_uri(self) -> str:
        """File value, else MLFLOW_TRACKING_URI, else a SQLite store in the results folder."""
        if self.tracking.uri:
            return self.tracking.uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{(self.paths.results_dir / 'mlflow.db').resolve()}"

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain TOML-compatible values (for logging as params)."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------
# loading and merging


def find_config(path: Path | None) -> Path:
    """The file to read: ``path`` if given, else ./bench.toml, else the packaged defaults."""
    if path is not None:
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist; pass an existing file to --config "
                f"or omit it to use ./{DEFAULT_CONFIG_NAME}"
            )
        return path.absolute()  # its folder anchors relative paths, whatever the cwd later
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else PACKAGED_DEFAULTS


def read_toml(path: Path) -> dict[str, Any]:
    return typed_toml.read_toml(path, ConfigError)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` over ``base`` (tables merge, everything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge and validate the configuration.

    ``overrides`` is a nested dict of CLI values (``{"run": {"profile": "paper"}}``);
    keys whose value is None are ignored so unset flags keep the file's value.
    """
    source = find_config(path)
    tree = read_toml(PACKAGED_DEFAULTS)
    if source != PACKAGED_DEFAULTS:
        tree = merge(tree, read_toml(source))
    overrides = _drop_none(overrides or {})
    if overrides:
        tree = merge(tree, overrides)
    try:
        config = typed_toml.build(Config, tree, source, error=ConfigError)
        _check_values(config, source)
    except ConfigError as error:
        raise _blame(error, source, overrides) from None
    # relative paths: beside the user's file; with the packaged defaults, in the working folder
    base = Path.cwd() if source == PACKAGED_DEFAULTS else source.parent
    paths = {
        name: value if value.is_absolute() else base / value
        for name, value in dataclasses.asdict(config.paths).items()
    }
    config = dataclasses.replace(config, paths=PathsConfig(**paths), source=source)
    try:
        _check_names(config)
    except ConfigError as error:
        raise _blame(error, source, overrides) from None
    return config


#: the command-line spelling of config keys that flags set
FLAGS = {
    "run.dataset": "the DATASET argument",
    "run.methods": "--methods",
    "run.profile": "--profile",
    "run.seeds": "--seeds",
    "run.device": "--device",
    "tracking.uri": "--tracking-uri",
    "tracking.experiment": "--experiment",
}


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict):
            keys += _flatten(value, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def _blame(error: ConfigError, source: Path, overrides: dict[str, Any]) -> ConfigError:
    """An error about a value typed on the command line names the flag, not the file."""
    message = str(error)
    for key in _flatten(overrides):
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", message):
            flag = FLAGS.get(key, "the command line")
            return ConfigError(message.replace(f"{source}: ", f"{flag}: ", 1))
    return error


def _check_values(config: Config, source: Path) -> None:
    """What the shapes cannot say: a positive lr, non-empty mults, lists without repeats."""
    for name, profile in config.profiles.items():
        where = f"{source}: profiles.{name}"
        if profile.lr != "paper" and not profile.lr > 0:
            raise ConfigError(f"{where}.lr = {profile.lr} must be positive")
        if not profile.unet_mults:
            raise ConfigError(f"{where}.unet_mults is empty; give at least one multiplier")
    for key in ("methods", "seeds"):
        values = getattr(config.run, key)
        if not values:
            raise ConfigError(f"{source}: run.{key} is empty; give at least one")
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(
                f"{source}: run.{key} lists {', '.join(repeated)} more than once (the same "
                "cell would run twice); list each once"
            )
    if min(config.run.seeds) < 0:
        raise ConfigError(f"{source}: run.seeds must be non-negative, got {min(config.run.seeds)}")
    if config.tracking.retry_minutes < 0:
        raise ConfigError(
            f"{source}: tracking.retry_minutes = {config.tracking.retry_minutes} must be 0 or "
            "more (0: a call fails at the store's first outage)"
        )


def _check_names(config: Config) -> None:
    """Refuse names that no registry knows, before anything runs."""
    from baselines import METHODS
    from bench.data import dataset_names, use_user_datasets

    use_user_datasets(config.paths.user_datasets)
    where = f"{config.source}: run"
    if config.run.profile not in config.profiles:
        raise ConfigError(
            f"{where}.profile = '{config.run.profile}' is not a profile; "
            f"valid choices: {choices(config.profiles)}"
        )
    if config.run.dataset not in dataset_names():
        folder = Path(config.run.dataset).expanduser()
        if folder.is_dir():
            from bench.data.layout import add_command

            raise ConfigError(
                f"{folder} is a folder, not a registered dataset; register it first with "
                f"`{add_command(folder)}`, then run `bench run` with that name"
            )
        raise ConfigError(
            f"{where}.dataset = '{config.run.dataset}' is not a dataset; "
            f"{did_you_mean(config.run.dataset, dataset_names())}"
            f"valid choices: {choices(dataset_names())}"
        )
    for method in config.run.methods:
        if method not in METHODS:
            raise ConfigError(
                f"{where}.methods has '{method}', which is not a method; "
                f"{did_you_mean(method, METHODS)}valid choices: {choices(METHODS)}"
            )
    for name, profile in config.profiles.items():
        for method, budget in profile.methods.items():
            where = f"{config.source}: profiles.{name}.methods"
            if method not in METHODS:
                raise ConfigError(
                    f"{where} has '{method}', which is not a method; "
                    f"valid choices: {choices(METHODS)}"
                )
            for key in ("iterations_scale", "lr_scale"):  # max_steps: checked on reading
                scale, base = getattr(budget, key), key.removesuffix("_scale")
                if scale <= 0:
                    raise ConfigError(f"{where}.{method}.{key} = {scale} must be positive")
                if scale != 1 and getattr(profile, base) == "paper":
                    raise ConfigError(
                        f"{where}.{method}.{key} = {scale} cannot scale profiles.{name}.{base}"
                        " = 'paper' (the paper's own value); remove the factor or give the "
                        "profile a number"
                    )


def _drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out
