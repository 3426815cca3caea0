"""Your own folders as datasets: recognise a layout, write its manifest, register it.

`bench data add NAME --path DIR` reads DIR's folder names, never its file order:

* **triplets**: ``A/`` + ``B/`` + ``C/`` (ISTD: shadow, mask, shadow-free) or
  ``input/`` + ``mask/`` + ``target/``;
* **pairs**: ``input/`` + ``target/``, ``lq/`` + ``gt/`` or ``low/`` + ``high/``;
* **single**: images and nothing else (generation data).

Each of these may sit in the folder itself or in ``train/`` and ``test/`` subfolders, whose
role folders may carry the split's name as a prefix (ISTD's ``train/train_A``). Without a
test folder, the pairs are split by a hash of their file stem (:class:`HashSplit`), so the
split never depends on listing order and adding files never moves a pair across it.

The manifest goes to the user's configuration folder (``[paths] user_datasets``), never
into the installed package, and only once the folder verifies (see docs/datasets.md).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bench.data.spec import IMAGE_SUFFIXES, DatasetSpec
from bench.data.verify import DataError, VerifyReport, hidden
from bench.errors import UsageError, choices, require_one_of
from bench.files import atomic_write, ensure_writable

Layout = Literal["auto", "pairs", "triplets", "single"]
LAYOUTS = ("auto", "pairs", "triplets", "single")

#: layout -> the folder names (lower case) that give each role, most specific first
ROLE_FOLDERS: dict[str, tuple[dict[str, str], ...]] = {
    "triplets": (
        {"input": "a", "mask": "b", "target": "c"},
        {"input": "input", "mask": "mask", "target": "target"},
    ),
    "pairs": (
        {"input": "input", "target": "target"},
        {"input": "lq", "target": "gt"},
        {"input": "low", "target": "high"},
    ),
}
TRAIN_FOLDERS = ("train", "training")
TEST_FOLDERS = ("test", "testing", "val", "valid", "eval")
#: the task a layout implies when --task is not given (pairs could be any restoration)
DEFAULT_TASK = {"triplets": "shadow-removal", "single": "generation"}
KIND = {"triplets": "triplet", "pairs": "paired", "single": "unpaired"}
DEFAULT_TEST_FRACTION = 0.2
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Detected:
    """What a folder holds: its layout and, per split, each role's folder (relative)."""

    layout: str
    splits: dict[str, dict[str, str]]  # "train"/"test" -> role -> folder
    by_hash: bool  # True: one set of folders, split by stem hash

    def describe(self) -> str:
        roles = next(iter(self.splits.values()))
        where = ", ".join(f"{role} {folder}/" for role, folder in roles.items())
        split = "split by file-name hash" if self.by_hash else "train/ and test/ folders"
        return f"{self.layout} ({where}; {split})"


def _subfolders(folder: Path) -> dict[str, str]:
    """lower-case name -> real name of each visible subfolder."""
    return {
        entry.name.lower(): entry.name
        for entry in sorted(folder.iterdir())
        if entry.is_dir() and not hidden(entry)
    }


def _has_images(folder: Path) -> bool:
    return any(
        p.is_file() and not hidden(p) and p.suffix.lower() in IMAGE_SUFFIXES
        for p in folder.iterdir()
    )


def _roles_in(folder: Path, layout: str, prefixes: tuple[str, ...] = ()) -> dict[str, str] | None:
    """The role folders of ``layout`` directly inside ``folder``; None if it has none.
    Role folders may carry a split's name as a prefix (``prefixes``: ISTD's train_A).
    Two sets of role names in one folder is ambiguous, and an error."""
    if layout == "single":
        return {"target": "."} if _has_images(folder) else None
    names = _subfolders(folder)
    for lower, real in list(names.items()):
        for prefix in prefixes:
            for joiner in ("_", "-"):
                if lower.startswith(prefix + joiner):
                    names.setdefault(lower[len(prefix) + 1 :], real)
    found = [
        {role: names[wanted] for role, wanted in roles.items()}
        for roles in ROLE_FOLDERS[layout]
        if all(wanted in names for wanted in roles.values())
    ]
    if len(found) > 1:
        sets = " and ".join("+".join(f"{v}/" for v in roles.values()) for roles in found)
        raise UsageError(
            f"{folder}: ambiguous layout, it has both {sets}; move one set away or "
            "write the manifest by hand (docs/datasets.md)"
        )
    return found[0] if found else None


def _detect_as(folder: Path, layout: str) -> Detected | None:
    names = _subfolders(folder)
    train = next((names[n] for n in TRAIN_FOLDERS if n in names), None)
    test = next((names[n] for n in TEST_FOLDERS if n in names), None)
    if train and test:
        split_roles = {}
        for split, sub in (("train", train), ("test", test)):
            roles = _roles_in(folder / sub, layout, (split, sub.lower()))
            if roles is None:
                return None
            split_roles[split] = {
                role: sub if real == "." else f"{sub}/{real}" for role, real in roles.items()
            }
        return Detected(layout, split_roles, by_hash=False)
    roles = _roles_in(folder, layout)
    if roles is None:
        return None
    return Detected(layout, {"train": roles, "test": roles}, by_hash=True)


def detect(folder: Path, layout: Layout = "auto") -> Detected:
    """The folder's layout (``auto``: triplets, then pairs, then single), or one error that
    says which folder names were looked for."""
    if layout not in LAYOUTS:
        raise UsageError(f"--layout '{layout}' is not one of {choices(LAYOUTS)}")
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder; --path must name a folder of images")
    for candidate in ("triplets", "pairs", "single") if layout == "auto" else (layout,):
        detected = _detect_as(folder, candidate)
        if detected is not None:
            return detected
    looked = "; ".join(
        f"{name}: " + " or ".join("+".join(f"{v}/" for v in roles.values()) for roles in options)
        for name, options in ROLE_FOLDERS.items()
        if layout in ("auto", name)
    )
    if layout in ("auto", "single"):
        looked += ("; " if looked else "") + "single: image files"
    raise UsageError(
        f"{folder}: no {'known' if layout == 'auto' else layout} layout found (looked for "
        f"{looked}, in the folder or in its train/ and test/ folders); rename the folders, "
        "or write the manifest by hand (docs/datasets.md)"
    )


def default_name(folder: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.resolve().name.lower()).strip("-.")
    return name or "my-dataset"


def add_command(folder: Path) -> str:
    """The `bench data add` command that would register ``folder`` as it is now."""
    command = f"bench data add {default_name(folder)} --path {folder}"
    try:
        detected = detect(folder)
    except UsageError:
        return command + " --layout pairs|triplets|single"
    command += f" --layout {detected.layout}"
    if detected.layout not in DEFAULT_TASK:
        command += " --task low-light|deraining|deblurring|shadow-removal"
    return command


def default_protocol(layout: str, task: str) -> str:
    """ISTD's regions need the mask, so triplets score with istd; generation with FID;
    everything else with plain RGB at native size (no paper's resizing or colour space)."""
    if task == "generation":
        return "celeba"
    return "istd" if layout == "triplets" and task == "shadow-removal" else "rgb"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def manifest_text(
    name: str,
    folder: Path,
    detected: Detected,
    task: str,
    protocol: str,
    test_fraction: float,
) -> str:
    """The TOML manifest of a user's folder (the same schema as the built-in manifests)."""
    lines = [
        f"# Registered by `bench data add {name}` ({detected.describe()}).",
        "# Remove with `bench data remove NAME`; edit by hand only with docs/datasets.md at hand.",
        f"name = {_toml_string(name)}",
        f"title = {_toml_string(f'{folder.name} (your own folder)')}",
        f"task = {_toml_string(task)}",
        f"protocol = {_toml_string(protocol)}",
        f"kind = {_toml_string(KIND[detected.layout])}",
        f"root = {_toml_string(str(folder.resolve()))}",
        'train_split = "train"',
        'test_split = "test"',
        "",
        "[sources]",
        f"manual = {_toml_string(f'Your own folder at {folder.resolve()}; nothing to fetch.')}",
        "",
        "[pairing]",
        'rule = "same file stem in every role folder"',
    ]
    if detected.by_hash:
        lines += ["", "[split_by_hash]", f"test_fraction = {test_fraction!r}"]
    for split, roles in detected.splits.items():
        lines += ["", f"[splits.{split}]"]
        lines += [f"{role} = {_toml_string(path)}" for role, path in roles.items()]
    return "\n".join(lines) + "\n"


def check_name(name: str, taken: list[str]) -> None:
    if not NAME.match(name):
        raise UsageError(
            f"dataset name '{name}' must be lower case letters, digits, '.', '_' or '-' "
            "(it becomes a file name and an MLflow tag)"
        )
    if name in taken:
        raise UsageError(
            f"a dataset named '{name}' exists already; choose another name, or "
            f"`bench data remove {name}` first"
        )


def problems_message(error: DataError, folder: Path, limit: int = 10) -> str:
    """Every problem of a folder in one message: the first ``limit``, then a count."""
    shown = "\n  ".join(error.problems[:limit])
    more = len(error.problems) - limit
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return (
        f"{folder} does not verify, so nothing was registered "
        f"({len(error.problems)} problem{'s' if len(error.problems) > 1 else ''}):\n  "
        f"{shown}{tail}"
    )


def register(
    name: str,
    folder: Path,
    user_folder: Path,
    layout: Layout = "auto",
    task: str | None = None,
    protocol: str | None = None,
    test_fraction: float | None = None,
    advance: Callable[[int], object] = lambda n: None,
) -> tuple[DatasetSpec, VerifyReport, Detected]:
    """Detect, verify and register ``folder`` as dataset ``name``.

    The manifest is written into ``user_folder`` last, and only when every image decodes,
    every file has its partners, the pairs agree in size and both splits are non-empty;
    otherwise one :class:`UsageError` lists the problems and nothing is registered."""
    from bench.data import dataset_names, use_user_datasets
    from bench.data.spec import PROTOCOLS, parse_manifest
    from bench.data.verify import verify

    check_name(name, dataset_names())
    folder = folder.expanduser().resolve()
    detected = detect(folder, layout)
    task = _task_for(detected, task, folder)
    protocol = protocol or default_protocol(detected.layout, task)
    require_one_of(protocol, PROTOCOLS, f"--protocol '{protocol}'")
    fraction = _test_fraction(detected, test_fraction, folder)
    text = manifest_text(name, folder, detected, task, protocol, fraction)
    with tempfile.TemporaryDirectory() as scratch:
        draft = Path(scratch) / f"{name}.toml"
        draft.write_text(text)
        spec = parse_manifest(draft)
    try:
        _refuse_empty_splits(spec, folder, detected)
        report = verify(spec, folder, relock=True, advance=advance)
    except DataError as error:
        raise UsageError(problems_message(error, folder)) from None
    target = user_folder / f"{name}.toml"
    ensure_writable(user_folder, "[paths] user_datasets (where your manifests go)")
    with atomic_write(target, "w") as handle:
        handle.write(text)
    use_user_datasets(user_folder)
    return replace(spec, manifest=target), report, detected


def _task_for(detected: Detected, task: str | None, folder: Path) -> str:
    """--task, or the layout's default; one that fits the layout."""
    from baselines import TASKS

    task = task or DEFAULT_TASK.get(detected.layout)
    if task is None:
        raise UsageError(
            f"{folder} holds {detected.describe()}; say which restoration it is with --task "
            f"(one of {choices(t for t in TASKS if t != 'generation')})"
        )
    require_one_of(task, TASKS, f"--task '{task}'")
    if (task == "generation") != (detected.layout == "single"):
        raise UsageError(
            f"--task {task} does not fit {detected.describe()}: generation takes single "
            "images, every other task pairs or triplets"
        )
    return task


def _test_fraction(detected: Detected, test_fraction: float | None, folder: Path) -> float:
    """The share of a folder without a test split that becomes the test split."""
    if test_fraction is not None and not detected.by_hash:
        raise UsageError(
            f"--test-fraction splits a folder without a test split, but {folder} has its own "
            "train and test folders; drop --test-fraction"
        )
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if not 0 < fraction < 1:
        raise UsageError(f"--test-fraction {fraction} is not between 0 and 1 (exclusive)")
    return fraction


def _refuse_empty_splits(spec: DatasetSpec, folder: Path, detected: Detected) -> None:
    """A split with no files, when nothing else is wrong, is the error to report."""
    from bench.data.verify import find_pairs

    splits = {name: find_pairs(spec, folder, name) for name in spec.split_layouts}
    empty = [name for name, (files, _) in splits.items() if len(files) == 0]
    if empty and not any(found for _, found in splits.values()):
        hint = "; change --test-fraction" if detected.by_hash else ""
        raise DataError([f"{folder}: split {' and '.join(empty)} would be empty{hint}"])


def unregister(name: str, user_folder: Path) -> Path:
    """Delete the manifest of a dataset `bench data add` registered; the folder and its files
    stay where they are. Built-in datasets cannot be removed."""
    from bench.data import DATASETS, dataset_names, use_user_datasets

    if name in DATASETS:
        raise UsageError(f"'{name}' is a built-in dataset; only datasets you added can be removed")
    manifest = user_folder / f"{name}.toml"
    if not manifest.is_file():
        users = [n for n in dataset_names() if n not in DATASETS]
        raise UsageError(
            f"no dataset '{name}' in {user_folder}; datasets you added: {choices(users)}"
        )
    manifest.unlink()
    use_user_datasets(user_folder)
    return manifest
