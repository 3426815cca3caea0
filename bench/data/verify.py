"""Check a dataset folder against its manifest, and lock its contents by SHA-256.

``pair_split`` does the structural checks (folders, file names, partners, counts) that every
loader repeats when it opens a split; ``verify`` adds a full decode of every image, the pair
size check, and writes the lock file. The lock lists the SHA-256 of every file under the
dataset root; the SHA-256 of the lock file itself is the dataset's fingerprint, which tracked
runs carry. A later verify compares against the lock and names every file that changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.data.spec import IMAGE_SUFFIXES, DatasetSpec, Role, Split
from bench.errors import BenchError
from bench.files import ImageError, atomic_write, read_image, sha256

LOCK_NAME = "bench-lock.json"
SYNTH_INFO = "synth.json"  # generation parameters of a synthetic suite
LOCK_FORMAT = 1
#: size, mtime and SHA-256 of each locked file when last hashed: the fast path of check_lock.
#: Hidden, so neither the lock nor the image listings see it.
STAT_CACHE = ".bench-stat.json"


class DataError(BenchError):
    """A dataset folder that does not match its manifest; ``problems`` lists every finding."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)


@dataclass
class SplitFiles:
    """The files of one split: ``pairs`` maps pair id -> role -> file for paired data;
    unpaired data lists each role's files on its own in ``singles``."""

    name: str
    pairs: dict[str, dict[str, Path]] = field(default_factory=dict)
    singles: dict[str, list[Path]] = field(default_factory=dict)

    def __len__(self) -> int:
        if self.pairs:
            return len(self.pairs)
        return len(self.singles.get("target", []))


def hidden(path: Path) -> bool:
    """Dot-files and dot-folders (.DS_Store, ._*, .ipynb_checkpoints) are never data."""
    return path.name.startswith(".")


def walk_files(root: Path) -> list[Path]:
    """Every visible file under ``root``, following symlinked folders, sorted."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder) / f for f in files if not f.startswith(".")]
    return sorted(found)


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Every image in ``folder``, sorted; hidden files are ignored, anything else that is not
    an image is an error, never skipped."""
    if not folder.is_dir():
        raise DataError([f"{folder}: folder missing"])
    entries = walk_files(folder) if recursive else sorted(folder.iterdir())
    images, problems = [], []
    for entry in entries:
        if hidden(entry) or entry.name in (LOCK_NAME, SYNTH_INFO):  # bench's own files
            continue
        if entry.is_dir():
            if not recursive:
                problems.append(f"{entry}: unexpected folder inside an image folder")
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            images.append(entry)
        else:
            problems.append(f"{entry}: not an image file (remove it or move it elsewhere)")
    if problems:
        raise DataError(problems)
    return images


def synth_info(root: Path) -> dict | None:
    path = root / SYNTH_INFO
    return json.loads(path.read_text()) if path.is_file() else None


def expected_count(spec: DatasetSpec, root: Path, split: Split) -> int | None:
    """The manifest's count; a synthetic suite's counts come from its own synth.json."""
    info = synth_info(root) if spec.synthetic else None
    if info is not None:
        return info["counts"].get(split.name)
    return split.count


def _name(path: Path, folder: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def pair_split(spec: DatasetSpec, root: Path, split_name: str) -> SplitFiles:
    """Match a split's files by the manifest's pairing rule and check the expected count."""
    result, problems = find_pairs(spec, root, split_name)
    if problems:
        raise DataError(problems)
    return result


def _listed(folder: Path, problems: list[str], recursive: bool = False) -> list[Path]:
    try:
        return list_images(folder, recursive)
    except DataError as error:
        problems += error.problems
        return []


def find_pairs(spec: DatasetSpec, root: Path, split_name: str) -> tuple[SplitFiles, list[str]]:
    """The split's complete pairs, and every problem found on the way (none raised)."""
    split = spec.split(split_name)
    result = SplitFiles(split_name)
    problems: list[str] = []
    if spec.kind == "unpaired":
        for role_name, role in split.roles.items():
            folder = root / role.folder
            result.singles[role_name] = [
                path
                for path in _listed(folder, problems, recursive=True)
                if split.by_hash is None or split.by_hash.keeps(_name(path, folder))
            ]
    else:
        by_role = {name: _ids(root / role.folder, role, problems) for name, role in split.roles.items()}  # fmt: skip
        result.pairs = _complete_pairs(by_role, split, root, problems)
    expected = expected_count(spec, root, split)
    if not problems and expected is not None and len(result) != expected:
        folder = root / split.roles["target"].folder
        problems.append(
            f"{folder}: {len(result)} images in split '{split_name}', expected {expected}"
        )
    return result, problems


def _ids(folder: Path, role: Role, problems: list[str]) -> dict[str, Path]:
    """A role's files by pair id; misnamed and duplicate files are problems."""
    regex = role.stem_regex()
    ids: dict[str, Path] = {}
    for path in _listed(folder, problems):
        match = regex.match(path.stem)
        if match is None:
            problems.append(f"{path}: name does not follow the pattern '{role.pattern}'")
        elif match["id"] in ids:
            problems.append(f"{path}: duplicate of {ids[match['id']].name}")
        else:
            ids[match["id"]] = path
    return ids


def _complete_pairs(
    by_role: dict[str, dict[str, Path]], split: Split, root: Path, problems: list[str]
) -> dict[str, dict[str, Path]]:
    """The ids present in every role (and kept by a hash split); a missing partner is a
    problem."""
    pairs = {}
    for pair_id in sorted(set().union(*(ids.keys() for ids in by_role.values()))):
        present = {role: ids[pair_id] for role, ids in by_role.items() if pair_id in ids}
        for role_name in by_role.keys() - present.keys():
            some_file = next(iter(present.values()))
            wanted = split.roles[role_name].stem_for(pair_id)
            problems.append(
                f"{some_file}: no partner '{wanted}.*' in {root / split.roles[role_name].folder}"
            )
        kept = split.by_hash is None or split.by_hash.keeps(pair_id)
        if len(present) == len(by_role) and kept:
            pairs[pair_id] = present
    return pairs


def _decode_problems(spec: DatasetSpec, files: SplitFiles) -> list[str]:
    """Decode every image; RGB where RGB is expected; the roles of a pair agree in size."""
    problems: list[str] = []

    # super-resolution sets may hold greyscale images (Y-channel protocols score them grey)
    colour = "any" if spec.super_resolution is not None else "RGB"

    def size_of(path: Path, role: str) -> tuple[int, int] | None:
        try:
            return read_image(path, "L" if role == "mask" else colour).shape[:2]
        except ImageError as error:
            problems.append(str(error))
            return None

    for role, paths in files.singles.items():
        for path in paths:
            size_of(path, role)
    scale = spec.super_resolution.scale if spec.super_resolution else None
    for roles in files.pairs.values():
        sizes = {role: size_of(path, role) for role, path in roles.items()}
        known = {role: size for role, size in sizes.items() if size is not None}
        if scale is not None and "input" in known and "target" in known:
            # an LR image has the HR image's modcropped size divided by the scale
            height, width = known["target"]
            if known.pop("input") != (height // scale, width // scale):
                lr = sizes["input"]
                problems.append(
                    f"{roles['input']}: LR {lr[1]}x{lr[0]} is not its HR image "
                    f"{roles['target'].name} ({width}x{height}) at scale {scale} (expected "
                    f"{width // scale}x{height // scale})"
                )
        if len(set(known.values())) > 1:
            described = ", ".join(
                f"{roles[r].parent.name}/{roles[r].name} {s[1]}x{s[0]}" for r, s in known.items()
            )
            problems.append(f"{roles['target']}: pair sizes differ ({described})")
    return problems


def dataset_files(root: Path) -> list[Path]:
    """Every file under the root that the lock covers: all visible files, through symlinked
    folders, but the lock itself."""
    return [p for p in walk_files(root) if p != root / LOCK_NAME]


def read_lock(root: Path) -> dict | None:
    path = root / LOCK_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BenchError(f"{path}: corrupt lock file; delete it and run verify again") from None


def fingerprint(root: Path) -> str | None:
    """SHA-256 of the lock file written by verify; None when the folder was never verified."""
    path = root / LOCK_NAME
    return sha256(path) if path.is_file() else None


@dataclass
class VerifyReport:
    name: str
    root: Path
    counts: dict[str, int]
    files: int
    fingerprint: str
    relocked: bool


def verify(
    spec: DatasetSpec,
    root: Path,
    relock: bool = False,
    advance: Callable[[int], object] = lambda n: None,
) -> VerifyReport:
    """Full check of ``root`` against ``spec``; writes (or checks) the lock file.

    With an existing lock, any file added, removed or changed since is an error unless
    ``relock`` is set. Nothing is written unless every check passes.
    """
    if not root.is_dir():
        raise DataError([f"{root}: dataset folder missing (see `bench data fetch {spec.name}`)"])
    counts = _count_and_check_splits(spec, root)
    hashes = {}
    for path in dataset_files(root):
        hashes[path.relative_to(root).as_posix()] = sha256(path)
        advance(1)
    old = read_lock(root)
    if old is not None and not relock:
        _refuse_changes(root, old["files"], hashes)
    lock = {"dataset": spec.name, "format": LOCK_FORMAT, "counts": counts, "files": hashes}
    if spec.split_rule is not None:  # the split is part of what the fingerprint pins
        lock["split_rule"] = spec.split_rule
    text = json.dumps(lock, indent=1, sort_keys=True) + "\n"
    if old is None or relock or (root / LOCK_NAME).read_text() != text:
        with atomic_write(root / LOCK_NAME, "w") as handle:
            handle.write(text)
    return VerifyReport(
        spec.name, root, counts, len(hashes), fingerprint(root) or "", old is None or relock
    )


def _count_and_check_splits(spec: DatasetSpec, root: Path) -> dict[str, int]:
    """Each split's number of files; every problem of every split, in one error."""
    counts: dict[str, int] = {}
    problems: list[str] = []
    for split_name in spec.split_layouts:
        files, found = find_pairs(spec, root, split_name)
        counts[split_name] = len(files)
        problems += found + _decode_problems(spec, files)
    if problems:  # splits that share folders (a hash split) find the same problem twice
        raise DataError(list(dict.fromkeys(problems)))
    return counts


def _refuse_changes(root: Path, locked: dict[str, str], hashes: dict[str, str]) -> None:
    """Every file changed, added or removed since the lock, in one error."""
    changed = [p for p in hashes if p in locked and locked[p] != hashes[p]]
    added = [p for p in hashes if p not in locked]
    removed = [p for p in locked if p not in hashes]
    problems = [f"{root / p}: changed since the last verify (SHA-256 differs)" for p in changed]
    problems += [f"{root / p}: added since the last verify" for p in added]
    problems += [f"{root / p}: removed since the last verify" for p in removed]
    if problems:
        raise DataError(problems)


class DataChanged(BenchError):
    """Files of a locked dataset differ from its lock: the run would score other data than the
    fingerprint it records."""


def _read_stat_cache(root: Path) -> dict:
    try:
        return json.loads((root / STAT_CACHE).read_text())
    except (OSError, ValueError):
        return {}


def check_lock(spec: DatasetSpec, root: Path) -> str:
    """The fingerprint of ``root`` once its files are checked against its lock.

    A file whose size and modification time are those recorded when it was last hashed is
    taken as unchanged; any other is hashed again. Without a lock the folder is verified
    in full first, which writes it. Files added, removed or changed stop the run with the
    files named and the way out (``bench data verify NAME --relock``)."""
    lock = read_lock(root)
    if lock is None:
        return verify(spec, root).fingerprint
    cache = _read_stat_cache(root)
    fresh, problems = {}, []
    current = {p.relative_to(root).as_posix(): p for p in dataset_files(root)}
    for name in sorted(current.keys() - lock["files"].keys()):
        problems.append(f"{root / name}: added since the lock")
    for name in sorted(lock["files"].keys() - current.keys()):
        problems.append(f"{root / name}: removed since the lock")
    for name in sorted(current.keys() & lock["files"].keys()):
        stat = current[name].stat()
        key = [stat.st_size, stat.st_mtime_ns]
        entry = cache.get(name)
        digest = entry[2] if entry and entry[:2] == key else sha256(current[name])
        fresh[name] = [*key, digest]
        if digest != lock["files"][name]:
            problems.append(f"{root / name}: changed since the lock (SHA-256 differs)")
    if fresh != cache:
        try:
            with atomic_write(root / STAT_CACHE, "w") as handle:
                json.dump(fresh, handle)
        except OSError:
            pass  # a read-only dataset: the next check hashes again
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataChanged(
            f"dataset '{spec.name}' at {root} no longer matches its lock: "
            f"{'; '.join(problems[:3])}{more}; restore the files, or accept them with "
            f"`bench data verify {spec.name} --relock` (a new fingerprint)"
        )
    return fingerprint(root) or ""


def written_by_bench(spec: DatasetSpec, root: Path) -> bool:
    """True when every file under ``root`` is one bench generated: a synthetic suite's
    synth.json and lock are there and every other file is in the lock with its SHA-256."""
    try:
        lock, info = read_lock(root), synth_info(root)
    except (BenchError, ValueError):
        return False
    if lock is None or info is None or lock.get("dataset") != spec.name:
        return False
    files = {p.relative_to(root).as_posix(): p for p in dataset_files(root)}
    extra = [p for p in root.rglob(".*") if p.name != STAT_CACHE]
    if extra or files.keys() != lock["files"].keys():
        return False
    return all(sha256(path) == lock["files"][name] for name, path in files.items())
