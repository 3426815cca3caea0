"""Datasets: manifests, fetch and verify, offline synthetic suites and torch loaders.

The runner's interface::

    spec = get_dataset(name)                      # a DatasetSpec (UsageError if unknown)
    root = ensure_dataset(name, data_root, seed)  # the folder; synthetic suites are generated
    fingerprint(name, root)                       # SHA-256 of the verify lock file, or None
    ds = open_split(name, root, split, image_size=64, train=True, **preprocess_options)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.data.spec import DatasetSpec, parse_manifest
from bench.errors import BenchError, UsageError, unknown_name
from bench.registry import Registry
from bench.resources import manifest_dir

if TYPE_CHECKING:
    import torch

#: name -> dataset description; manifests in datasets/ and the synthetic suites register here.
DATASETS: Registry = Registry("dataset")

for _manifest in sorted(manifest_dir().glob("*.toml")):
    _spec = parse_manifest(_manifest)
    DATASETS.add(_spec.name, _spec)


#: the folder of the user's own manifests (`bench data add`) and what it holds
_user_folder: Path | None = None
_user: dict[str, DatasetSpec] = {}


def use_user_datasets(folder: Path | None) -> None:
    """Read the manifests `bench data add` wrote into ``folder`` (the config's
    ``paths.user_datasets``), replacing any read before. A name that a built-in dataset
    already has is an error naming the file."""
    global _user_folder, _user
    found: dict[str, DatasetSpec] = {}
    for manifest in sorted(folder.glob("*.toml")) if folder and folder.is_dir() else ():
        spec = parse_manifest(manifest)
        if spec.name in DATASETS:
            raise UsageError(
                f"{manifest}: '{spec.name}' is a built-in dataset's name; rename the file "
                "and its name key, or remove it with `bench data remove`"
            )
        found[spec.name] = spec
    _user_folder, _user = folder, found


def dataset_names() -> list[str]:
    """Built-in and user datasets, sorted."""
    return sorted([*DATASETS, *_user])


def is_user_dataset(name: str) -> bool:
    return name in _user


def get_dataset(name: str) -> DatasetSpec:
    """The dataset's description; an unknown name is a UsageError listing the valid ones."""
    if name in _user:
        return _user[name]
    if name not in DATASETS:
        raise unknown_name("dataset", name, dataset_names())
    return DATASETS.get(name)


def missing_message(spec: DatasetSpec, root: Path) -> str:
    if spec.root is not None:  # a folder of the user's own, registered by `bench data add`
        return (
            f"dataset '{spec.name}' was registered from {root}, which is not there any more; "
            f"move the folder back, or `bench data remove {spec.name}` and add it again"
        )
    if spec.downloads:
        return f"dataset '{spec.name}' not found at {root}; run `bench data fetch {spec.name}`"
    return (
        f"dataset '{spec.name}' not found at {root}; it needs a manual download: "
        f"`bench data fetch {spec.name}` prints what to download and where to put it"
    )


def ensure_dataset(name: str, data_root: Path, seed: int = 0) -> Path:
    """The dataset's folder under ``data_root``.

    A missing synthetic suite is generated (deterministically, and verified). A suite bench
    generated earlier (its synth.json and lock) is used as it is, whatever its seed or counts
    (they are recorded), and its files are checked against the lock by every run. It is
    regenerated with the same parameters only when the generator changed since and every
    file is still the one bench wrote. A folder bench did not write is never replaced: that
    is an error naming it. A real dataset must already be there.
    """
    from bench.data.synth import GENERATOR_VERSION, generate
    from bench.data.verify import read_lock, synth_info, written_by_bench

    spec = get_dataset(name)
    root = spec.folder(data_root)
    if spec.synthetic:
        if not root.exists() or (root.is_dir() and not any(root.iterdir())):
            from bench.files import ensure_writable

            ensure_writable(Path(data_root), "[paths] data_root (where the suite is generated)")
            generate(spec, root, seed)
            return root
        info = synth_info(root) if root.is_dir() else None
        lock = read_lock(root) if info else None
        if info is None or lock is None or lock.get("dataset") != name:
            raise BenchError(
                f"{root} exists but is not a '{name}' suite bench generated (no synth.json "
                "and lock of that suite); bench never replaces a folder it did not write: "
                "move it away, or point [paths] data_root elsewhere"
            )
        if info.get("generator") != GENERATOR_VERSION and written_by_bench(spec, root):
            generate(spec, root, info.get("seed", seed), info.get("params"))
        return root
    if not root.is_dir():
        raise BenchError(missing_message(spec, root))
    return root


@dataclass(frozen=True)
class DataInUse:
    """A dataset as a run uses it, resolved once: its manifest, its folder (a synthetic
    suite generated if missing) and the fingerprint of its files, checked against its lock."""

    spec: DatasetSpec
    root: Path
    fingerprint: str


def use_dataset(name: str, data_root: Path) -> DataInUse:
    """Resolve ``name`` for a run: the folder ensured and its files checked against the lock
    (`bench.data.verify.check_lock`, which verifies in full when there is none yet)."""
    from bench.data.verify import check_lock

    spec = get_dataset(name)
    root = ensure_dataset(name, data_root)
    return DataInUse(spec, root, check_lock(spec, root))


def fingerprint(name: str, root: Path) -> str | None:
    """SHA-256 of the lock file `bench data verify` wrote; None if never verified."""
    from bench.data import verify

    get_dataset(name)
    return verify.fingerprint(Path(root))


def open_split(
    name: str,
    root: Path,
    split: str,
    image_size: int | None = 64,
    train: bool = True,
    **preprocess_options: Any,
) -> torch.utils.data.Dataset:
    """A torch Dataset of ``split``; items are dicts (input, target, mask, name); see loaders."""
    from bench.data.loaders import open_split as _open

    return _open(get_dataset(name), Path(root), split, image_size, train, **preprocess_options)


__all__ = [
    "DATASETS",
    "DatasetSpec",
    "dataset_names",
    "ensure_dataset",
    "fingerprint",
    "get_dataset",
    "open_split",
    "use_user_datasets",
]
