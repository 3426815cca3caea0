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
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.errors import ConfigError, choices

PACKAGED_DEFAULTS = Path(__file__).with_name("defaults.toml")
DEFAULT_CONFIG_NAME = "bench.toml"

Paper = Literal["paper"]


@dataclass(frozen=True)
class TrackingConfig:
    uri: str = ""
    experiment: str = "bench"


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


@dataclass(frozen=True)
class MethodBudget:
    """One method's budget relative to its profile's: the profile's iterations and lr times
    these factors, so a file that changes the profile's iterations moves every method."""

    iterations_scale: float = 1.0
    lr_scale: float = 1.0


@dataclass(frozen=True)
class ProfileConfig:
    """A training and sampling budget. "paper" takes the paper's value for the task."""

    image_size: int
    batch_size: int
    grad_accumulation: int
    iterations: int | Paper
    steps: int | Paper
    unet_dim: int
    unet_mults: tuple[int, ...]
    lr: float | Paper
    ema_decay: float
    ema_every: int
    ema_start: int
    checkpoint_every: int
    eval_images: int  # 0: the whole test split
    eval_batch_size: int
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
    eval_every: int = 0

    def budget(self, method: str) -> tuple[int | Paper, float | Paper]:
        """(iterations, lr) for ``method``: the profile's, times its factors where set.
        A "paper" value is the paper's and is never scaled (load_config refuses that)."""
        own = self.methods.get(method, MethodBudget())
        iterations = self.iterations
        if iterations != "paper":
            iterations = max(1, round(iterations * own.iterations_scale))
        lr = self.lr if self.lr == "paper" else self.lr * own.lr_scale
        return iterations, lr


@dataclass(frozen=True)
class Config:
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    profiles: dict[str, ProfileConfig] = field(default_factory=dict)
    #: the file the values came from (the packaged defaults when no file was found)
    source: Path = PACKAGED_DEFAULTS

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
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None


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
        config = _build(Config, tree, source, "")
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


#: (least, most) allowed for profile values; None: unbounded
_PROFILE_RANGES: dict[str, tuple[float | None, float | None]] = {
    "image_size": (8, None),
    "batch_size": (1, None),
    "grad_accumulation": (1, None),
    "iterations": (1, None),
    "steps": (1, None),
    "unet_dim": (1, None),
    "ema_decay": (0, 1),
    "ema_every": (1, None),
    "ema_start": (0, None),
    "checkpoint_every": (1, None),
    "eval_images": (0, None),
    "eval_batch_size": (1, None),
    "eval_every": (0, None),
}


def _check_values(config: Config, source: Path) -> None:
    """Numbers in range and lists without repeats, before anything runs."""
    for name, profile in config.profiles.items():
        where = f"{source}: profiles.{name}"
        for key, (least, most) in _PROFILE_RANGES.items():
            value = getattr(profile, key)
            if value == "paper":
                continue
            if least is not None and value < least or most is not None and value > most:
                bound = f"between {least} and {most}" if most is not None else f"at least {least}"
                raise ConfigError(f"{where}.{key} = {value} must be {bound}")
        if profile.lr != "paper" and not profile.lr > 0:
            raise ConfigError(f"{where}.lr = {profile.lr} must be positive")
        if not profile.unet_mults or min(profile.unet_mults) < 1:
            raise ConfigError(f"{where}.unet_mults = {list(profile.unet_mults)} must be positive integers")  # fmt: skip
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
            f"valid choices: {choices(dataset_names())}"
        )
    for method in config.run.methods:
        if method not in METHODS:
            raise ConfigError(
                f"{where}.methods has '{method}', which is not a method; "
                f"valid choices: {choices(METHODS)}"
            )
    for name, profile in config.profiles.items():
        for method, budget in profile.methods.items():
            where = f"{config.source}: profiles.{name}.methods"
            if method not in METHODS:
                raise ConfigError(
                    f"{where} has '{method}', which is not a method; "
                    f"valid choices: {choices(METHODS)}"
                )
            for key, scale in vars(budget).items():
                base = key.removesuffix("_scale")
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


# ---------------------------------------------------------------------------------------
# validation against the dataclasses' type hints


def _build(cls: type, table: Any, source: Path, prefix: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table, got {_describe(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = set(table) - set(fields)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{source}: unknown key '{prefix}{key}'; valid keys in {where}: {choices(fields)}"
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in table
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{source}: {where} is missing key(s) {', '.join(prefix + m for m in missing)}"
        )
    values = {name: _convert(hints[name], table[name], source, prefix + name) for name in table}
    return cls(**values)


def _convert(hint: Any, value: Any, source: Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a table, got {_describe(value)}")
        return {
            name: _convert(args[1], item, source, f"{key}.{name}") for name, item in value.items()
        }
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {_describe(value)}")
        return tuple(_convert(args[0], item, source, f"{key}[{i}]") for i, item in enumerate(value))
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{source}: {key} = {value!r} is not valid; valid choices: {choices(map(str, args))}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(option, value, source, key)
            except ConfigError:
                continue
        expected = " or ".join(_name(option) for option in args)
        raise ConfigError(f"{source}: {key} must be {expected}, got {_describe(value)}")
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {key} must be a path string, got {_describe(value)}")
        return Path(value).expanduser()
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{source}: {key} must be {_name(hint)}, got {_describe(value)}")
    return value


def _name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
