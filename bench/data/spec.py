"""Dataset descriptions read from the TOML manifests in ``datasets/``.

One manifest per dataset names its sources, its splits with expected counts, the folders
each split's roles live in (the canonical layout the loaders read), the pairing rule, and
the preprocessing the papers apply. Whatever the sources leave open is listed under
``open`` in the manifest instead of being guessed here.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from baselines import TASKS  # the tasks the methods' paper settings know
from bench.conventions import protocol_names
from bench.errors import UsageError, choices, require_one_of

Kind = Literal["triplet", "paired", "unpaired"]
#: the protocol names a manifest may give (from the torch-free table the registry also reads)
PROTOCOLS = protocol_names()
KINDS = ("triplet", "paired", "unpaired")
#: the roles a split can have, in the order they are read; "target" is always present
ROLES = ("input", "target", "mask")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TOP_LEVEL_KEYS = {
    "name", "title", "task", "protocol", "kind", "synthetic", "train_split", "test_split",
    "native_size", "open", "sources", "prepare", "pairing", "splits", "preprocess", "synth",
    "settings", "root", "split_by_hash",
}  # fmt: skip
PREPROCESS_KEYS = {
    "equalize_input", "train_flip", "fixed_crop", "center_box_mask", "native_long_side",
    "native_multiple",
}  # fmt: skip


@dataclass(frozen=True)
class Role:
    """One folder of a split: where it is and how its file stems name the pair id."""

    folder: str  # relative to the dataset root
    pattern: str = "{id}"  # file stem = pattern with {id} filled in

    def stem_regex(self) -> re.Pattern[str]:
        before, _, after = self.pattern.partition("{id}")
        return re.compile(f"^{re.escape(before)}(?P<id>.+){re.escape(after)}$")

    def stem_for(self, pair_id: str) -> str:
        return self.pattern.replace("{id}", pair_id)


@dataclass(frozen=True)
class HashSplit:
    """A split carved out of one folder by file stem: a pair is in the test split when the
    first 8 bytes of SHA-256(stem), read as a fraction of 2**64, are below ``test_fraction``.
    The rule depends on nothing but the stem, so adding files never moves existing pairs."""

    test_fraction: float
    part: Literal["train", "test"]

    def keeps(self, pair_id: str) -> bool:
        digest = hashlib.sha256(pair_id.encode("utf-8")).digest()
        in_test = int.from_bytes(digest[:8], "big") / 2**64 < self.test_fraction
        return in_test == (self.part == "test")

    def describe(self) -> str:
        return f"sha256(stem)[:8] / 2^64 < {self.test_fraction:g} -> test, else train"


@dataclass(frozen=True)
class Split:
    name: str
    count: int | None  # expected number of pairs (images for unpaired data); None: not known
    roles: dict[str, Role]
    by_hash: HashSplit | None = None  # None: the split's folders hold exactly its files


@dataclass(frozen=True)
class Download:
    """A file with a direct link: fetched, checked and (if an archive) extracted."""

    url: str
    file: str
    sha256: str | None = None
    md5: str | None = None
    extract: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    task: str
    protocol: str
    kind: Kind
    split_layouts: dict[str, Split]
    train_split: str | None
    test_split: str
    synthetic: bool
    has_mask: bool
    homepage: str = ""
    downloads: tuple[Download, ...] = ()
    manual: str = ""  # what to download by hand, and where to put it
    prepare: str | None = None  # name of the conversion `bench data prepare` runs
    preprocess: dict[str, Any] = field(default_factory=dict)
    synth: dict[str, Any] = field(default_factory=dict)
    open_points: tuple[str, ...] = ()
    manifest: Path | None = None
    #: where a user's dataset lives (`bench data add`); None: <data_root>/<name>
    root: Path | None = None

    @property
    def split_rule(self) -> str | None:
        """How train and test were carved out of one folder, or None for folder splits."""
        rules = {s.by_hash.describe() for s in self.split_layouts.values() if s.by_hash}
        return rules.pop() if rules else None

    def folder(self, data_root: Path) -> Path:
        """The dataset's folder: its own root if registered with one, else under data_root."""
        return self.root if self.root is not None else Path(data_root) / self.name

    @property
    def splits(self) -> dict[str, int | None]:
        """split name -> expected count (None where the sources do not give one)."""
        return {name: split.count for name, split in self.split_layouts.items()}

    def split(self, name: str) -> Split:
        try:
            return self.split_layouts[name]
        except KeyError:
            raise UsageError(
                f"dataset '{self.name}' has no split '{name}'; valid splits: "
                f"{choices(self.split_layouts)}"
            ) from None


def _require(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise UsageError(f"{where}: missing key '{key}'")
    return table[key]


def _one_of(value: str, valid: tuple[str, ...], key: str, where: str) -> str:
    return require_one_of(value, valid, f"{where}: {key} = '{value}'")


def _hash_splits(table: dict[str, Any], layouts: dict[str, Split], where: str) -> dict[str, Split]:
    """``[split_by_hash] test_fraction = f``: the train and test splits share folders and are
    told apart by :class:`HashSplit`."""
    rule = table["split_by_hash"]
    fraction = rule.get("test_fraction") if isinstance(rule, dict) else None
    if set(rule) - {"test_fraction"} or not isinstance(fraction, int | float):
        raise UsageError(f"{where}: [split_by_hash] takes one key, test_fraction (a number)")
    if not 0 < fraction < 1:
        raise UsageError(f"{where}: split_by_hash.test_fraction = {fraction} is not in (0, 1)")
    parts = {table.get("train_split"): "train", table.get("test_split"): "test"}
    if set(layouts) != set(parts) or None in parts:
        raise UsageError(
            f"{where}: [split_by_hash] needs exactly the train_split and test_split splits"
        )
    return {
        name: replace(split, by_hash=HashSplit(float(fraction), parts[name]))  # type: ignore[arg-type]
        for name, split in layouts.items()
    }


def _root(table: dict[str, Any], manifest: Path) -> Path | None:
    """A user's dataset names its folder (relative paths: beside the manifest)."""
    if "root" not in table:
        return None
    root = Path(table["root"]).expanduser()
    return root if root.is_absolute() else (manifest.parent / root).resolve()


def parse_manifest(path: Path) -> DatasetSpec:
    """Read and check one manifest; a malformed file is a UsageError naming it and the key."""
    where = str(path)
    try:
        with path.open("rb") as handle:
            table = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{where}: not valid TOML ({error})") from None
    for key, known, place in (
        (set(table), TOP_LEVEL_KEYS, "top level"),
        (set(table.get("preprocess", {})), PREPROCESS_KEYS, "[preprocess]"),
    ):
        if key - known:
            raise UsageError(f"{where}: unknown key(s) {sorted(key - known)} at {place}")
    kind = _one_of(_require(table, "kind", where), KINDS, "kind", where)
    patterns = table.get("pairing", {})
    layouts: dict[str, Split] = {}
    for split_name, split_table in _require(table, "splits", where).items():
        roles = {
            role: Role(split_table[role], patterns.get(role, "{id}"))
            for role in ROLES
            if role in split_table
        }
        if "target" not in roles:
            raise UsageError(f"{where}: split '{split_name}' has no 'target' folder")
        if kind == "paired" and "input" not in roles:
            raise UsageError(f"{where}: paired split '{split_name}' has no 'input' folder")
        if kind == "triplet" and not {"input", "mask"} <= set(roles):
            raise UsageError(f"{where}: triplet split '{split_name}' needs input and mask")
        layouts[split_name] = Split(split_name, split_table.get("count"), roles)
    if "split_by_hash" in table:
        layouts = _hash_splits(table, layouts, where)
    synth = table.get("synth", {})
    if table.get("synthetic") and synth:  # default counts of a generated suite
        for split_name, key in (
            (table.get("train_split"), "train_count"),
            (table.get("test_split"), "test_count"),
        ):
            if split_name in layouts and key in synth:
                layouts[split_name] = replace(layouts[split_name], count=int(synth[key]))
    sources = table.get("sources", {})
    spec = DatasetSpec(
        name=_require(table, "name", where),
        title=table.get("title", ""),
        task=_one_of(_require(table, "task", where), TASKS, "task", where),
        protocol=_one_of(_require(table, "protocol", where), PROTOCOLS, "protocol", where),
        kind=kind,  # type: ignore[arg-type]
        split_layouts=layouts,
        train_split=table.get("train_split"),
        test_split=_require(table, "test_split", where),
        synthetic=bool(table.get("synthetic", False)),
        has_mask=any("mask" in split.roles for split in layouts.values())
        or table.get("task") == "inpainting",
        homepage=sources.get("homepage", ""),
        downloads=tuple(Download(**item) for item in sources.get("download", [])),
        manual=sources.get("manual", ""),
        prepare=table.get("prepare", {}).get("conversion"),
        preprocess=table.get("preprocess", {}),
        synth=synth,
        open_points=tuple(table.get("open", [])),
        manifest=path,
        root=_root(table, path),
    )
    for split_name in (spec.train_split, spec.test_split):
        if split_name is not None and split_name not in layouts:
            raise UsageError(f"{where}: split '{split_name}' is named but not defined")
    if spec.name != path.stem:
        raise UsageError(f"{where}: name '{spec.name}' differs from the file name '{path.stem}'")
    return spec
