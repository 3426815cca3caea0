"""Dataset descriptions read from the TOML manifests in ``datasets/``.

One manifest per dataset names its sources, its splits with expected counts, the folders
each split's roles live in (the canonical layout the loaders read), the pairing rule, and
the preprocessing the papers apply. Whatever the sources leave open is listed under
``open`` in the manifest instead of being guessed here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from baselines import TASKS  # the tasks the methods' paper settings know
from bench import typed_toml
from bench.conventions import protocol_names
from bench.errors import UsageError, choices

Kind = Literal["triplet", "paired", "unpaired"]
#: the protocol names a manifest may give (from the torch-free table the registry also reads)
PROTOCOLS = protocol_names()
KINDS = ("triplet", "paired", "unpaired")
#: the roles a split can have, in the order they are read; "target" is always present
ROLES = ("input", "target", "mask")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")


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
class ManualFile:
    """A file downloaded by hand (its link needs a browser), with the checksum its source
    publishes (``checksum_source`` says where) and, on Google Drive, its file id.
    `bench data prepare` checks a copy placed in the dataset folder before anything reads it,
    and unpacks it when ``extract``."""

    file: str
    md5: str | None = None
    sha256: str | None = None
    drive_id: str | None = None
    checksum_source: str = ""
    extract: bool = False

    def describe(self) -> str:
        """``img_align_celeba.zip: MD5 00d2..., Google Drive id 0B7...``."""
        parts = [
            f"MD5 {self.md5}" if self.md5 else "",
            f"SHA-256 {self.sha256}" if self.sha256 else "",
        ]
        parts.append(f"Google Drive id {self.drive_id}" if self.drive_id else "")
        checked = ", ".join(p for p in parts if p) or "no published checksum"
        return f"{self.file}: {checked}" + (
            f" ({self.checksum_source})" if self.checksum_source else ""
        )


# ---------------------------------------------------------------------------------------
# the manifest file's shape, read by bench.typed_toml (the reader of every TOML file)


@dataclass(frozen=True)
class _SplitFile:
    target: str
    input: str | None = None
    mask: str | None = None
    count: int | None = field(default=None, metadata=typed_toml.at_least(0))


@dataclass(frozen=True)
class _SourcesFile:
    homepage: str = ""
    manual: str = ""
    download: tuple[Download, ...] = ()
    manual_file: tuple[ManualFile, ...] = ()


@dataclass(frozen=True)
class _PrepareFile:
    conversion: str
    #: file (relative to the dataset folder) -> MD5, checked before the conversion reads it
    md5: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _PreprocessFile:
    """The papers' preprocessing; the loaders read what a manifest sets (bench.data.loaders)."""

    equalize_input: bool = False
    train_flip: Literal["none", "random", "always"] = "random"
    #: the dataset's own pipeline (bench.data.pipeline): super-resolution trains on crops and
    #: tests at the files' size, since resizing would change the task's scale
    train_crop: Literal["resize", "random"] = "resize"
    test_size: Literal["resize", "native"] = "resize"
    fixed_crop: tuple[int, ...] = ()  # centre x, centre y, size
    center_box_mask: bool = False


@dataclass(frozen=True)
class SuperResolution:
    """``[super_resolution]`` of a super-resolution manifest: the scale its LR images have,
    the bicubic kernel that made them and that upsamples them for the methods (``"matlab"``:
    ``imresize``, antialiased; ``"pil"``: PIL's, as SR3's ``prepare_data.py``), and MATLAB's
    edge rule (``"symmetric"``, today's; ``"clamp"``, older releases). Folders and pairing
    patterns may name ``{scale}``."""

    scale: Literal[2, 3, 4, 8]
    kernel: Literal["matlab", "pil"] = "matlab"
    edge: Literal["symmetric", "clamp"] = "symmetric"


@dataclass(frozen=True)
class _HashSplitFile:
    test_fraction: float


@dataclass(frozen=True)
class _ManifestFile:
    name: str
    task: str = field(metadata=typed_toml.choices(TASKS))
    protocol: str = field(metadata=typed_toml.choices(PROTOCOLS))
    kind: Kind
    test_split: str
    splits: dict[str, _SplitFile]
    title: str = ""
    synthetic: bool = False
    train_split: str | None = None
    open: tuple[str, ...] = ()
    sources: _SourcesFile = field(default_factory=_SourcesFile)
    prepare: _PrepareFile | None = None
    #: pairing rule in words ("rule") and per-role file-stem patterns ("input = '{id}_rain'")
    pairing: dict[str, str] = field(default_factory=dict)
    preprocess: _PreprocessFile = field(default_factory=_PreprocessFile)
    synth: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    root: str | None = None  # a user's dataset: its folder (relative: beside the manifest)
    split_by_hash: _HashSplitFile | None = None
    super_resolution: SuperResolution | None = None


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
    manual_files: tuple[ManualFile, ...] = ()  # the hand downloads' checksums and Drive ids
    prepare: str | None = None  # name of the conversion `bench data prepare` runs
    #: file (relative to the dataset folder) -> MD5, checked before the conversion reads it
    prepare_md5: dict[str, str] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    synth: dict[str, Any] = field(default_factory=dict)
    open_points: tuple[str, ...] = ()
    manifest: Path | None = None
    #: where a user's dataset lives (`bench data add`); None: <data_root>/<name>
    root: Path | None = None
    #: super-resolution data: the LR images' scale and edge rule (None for other tasks)
    super_resolution: SuperResolution | None = None

    @property
    def protocol_options(self) -> dict[str, Any]:
        """What the dataset sets on its protocol: the scale of super-resolution data."""
        return {"scale": self.super_resolution.scale} if self.super_resolution else {}

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


def _hash_splits(
    manifest: _ManifestFile, layouts: dict[str, Split], where: Path
) -> dict[str, Split]:
    """``[split_by_hash] test_fraction = f``: the train and test splits share folders and are
    told apart by :class:`HashSplit`."""
    fraction = manifest.split_by_hash.test_fraction  # type: ignore[union-attr]
    if not 0 < fraction < 1:
        raise typed_toml.fail(UsageError, where, "split_by_hash.test_fraction", f"= {fraction} is not in (0, 1)")  # fmt: skip
    parts = {manifest.train_split: "train", manifest.test_split: "test"}
    if set(layouts) != set(parts) or None in parts:
        raise typed_toml.fail(
            UsageError,
            where,
            "",
            "[split_by_hash] needs exactly the train_split and test_split splits",
        )
    return {
        name: replace(split, by_hash=HashSplit(fraction, parts[name]))  # type: ignore[arg-type]
        for name, split in layouts.items()
    }


def _root(root: str | None, manifest: Path) -> Path | None:
    """A user's dataset names its folder (relative paths: beside the manifest)."""
    if root is None:
        return None
    folder = Path(root).expanduser()
    return folder if folder.is_absolute() else (manifest.parent / folder).resolve()


def _layouts(manifest: _ManifestFile, where: Path) -> dict[str, Split]:
    """Each split's role folders with the pairing's stem patterns, as the kind requires."""
    layouts: dict[str, Split] = {}
    scale = manifest.super_resolution.scale if manifest.super_resolution else None
    for split_name, split in manifest.splits.items():
        folders = {"input": split.input, "target": split.target, "mask": split.mask}
        roles = {
            role: Role(
                _at_scale(folders[role], scale),
                _at_scale(manifest.pairing.get(role, "{id}"), scale),  # type: ignore[arg-type]
            )
            for role in ROLES
            if folders[role] is not None
        }
        key = f"splits.{split_name}"
        if manifest.kind == "paired" and "input" not in roles:
            raise typed_toml.fail(
                UsageError, where, key, "is a paired split and has no 'input' folder"
            )
        if manifest.kind == "triplet" and not {"input", "mask"} <= set(roles):
            raise typed_toml.fail(
                UsageError, where, key, "is a triplet split and needs input and mask"
            )
        layouts[split_name] = Split(split_name, split.count, roles)
    if manifest.synthetic and manifest.synth:  # default counts of a generated suite
        for split_name, count_key in (
            (manifest.train_split, "train_count"),
            (manifest.test_split, "test_count"),
        ):
            if split_name in layouts and count_key in manifest.synth:
                count = int(manifest.synth[count_key])
                layouts[split_name] = replace(layouts[split_name], count=count)
    if manifest.split_by_hash is not None:
        layouts = _hash_splits(manifest, layouts, where)
    return layouts


def _at_scale(text: str, scale: int | None) -> str:
    """A folder or pattern with ``{scale}`` filled in (super-resolution manifests)."""
    return text if scale is None else text.replace("{scale}", str(scale))


def _check_super_resolution(manifest: _ManifestFile, path: Path) -> None:
    """The task and its ``[super_resolution]`` table come together, with paired LR files."""
    if (manifest.task == "super-resolution") != (manifest.super_resolution is not None):
        raise typed_toml.fail(
            UsageError,
            path,
            "super_resolution",
            "is required by task 'super-resolution' (scale = 2, 3, 4 or 8) and allowed only there",
        )
    if manifest.super_resolution is not None and manifest.kind != "paired":
        raise typed_toml.fail(UsageError, path, "kind", "must be 'paired' (LR input, HR target) for super-resolution")  # fmt: skip


def parse_manifest(path: Path) -> DatasetSpec:
    """Read and check one manifest; a malformed file is a UsageError naming it and the key."""
    table = typed_toml.read_toml(path)
    manifest = typed_toml.build(_ManifestFile, table, path)
    for key, split_name in (("train_split", manifest.train_split), ("test_split", manifest.test_split)):  # fmt: skip
        if split_name is not None and split_name not in manifest.splits:
            raise typed_toml.fail(UsageError, path, key, f"= '{split_name}' is named but not defined under [splits]")  # fmt: skip
    if manifest.name != path.stem:
        raise typed_toml.fail(UsageError, path, "name", f"= '{manifest.name}' differs from the file name '{path.stem}'")  # fmt: skip
    _check_super_resolution(manifest, path)
    layouts = _layouts(manifest, path)
    preprocess = dict(table.get("preprocess", {}))  # what the file sets, as it sets it
    return DatasetSpec(
        name=manifest.name,
        title=manifest.title,
        task=manifest.task,
        protocol=manifest.protocol,
        kind=manifest.kind,
        split_layouts=layouts,
        train_split=manifest.train_split,
        test_split=manifest.test_split,
        synthetic=manifest.synthetic,
        has_mask=any("mask" in split.roles for split in layouts.values())
        or manifest.task == "inpainting",
        homepage=manifest.sources.homepage,
        downloads=manifest.sources.download,
        manual=manifest.sources.manual,
        manual_files=manifest.sources.manual_file,
        prepare=manifest.prepare.conversion if manifest.prepare else None,
        # a hand-downloaded file the conversion reads is checked like its own list (an
        # archive is checked once, when unpack_manual_files unpacks it)
        prepare_md5={m.file: m.md5 for m in manifest.sources.manual_file if m.md5 and not m.extract}
        | (manifest.prepare.md5 if manifest.prepare else {}),
        preprocess=preprocess,
        synth=manifest.synth,
        open_points=manifest.open,
        manifest=path,
        root=_root(manifest.root, path),
        super_resolution=manifest.super_resolution,
    )
