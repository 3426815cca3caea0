"""Downloading and unpacking datasets that have direct links.

Downloads resume from a ``.part`` file with an HTTP Range request, are checked against the
manifest's checksum, and only then renamed to their real name; a file that fails its
checksum is moved to ``<downloads>/quarantine/`` and never used. Archives are checked member
by member before anything is extracted (no absolute paths, no ``..``, no links leaving the
target, no devices) and are unpacked into a temporary folder that is renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from bench.data.spec import Download
from bench.errors import BenchError
from bench.files import CHUNK

#: called once with the total byte count (None if unknown); yields advance(n_bytes)
Progress = Callable[[int | None], AbstractContextManager[Callable[[int], object]]]


@contextmanager
def no_progress(total: int | None) -> Iterator[Callable[[int], object]]:
    yield lambda n: None


class ChecksumError(BenchError):
    pass


class UnsafeArchiveError(BenchError):
    pass


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, item: Download, quarantine: Path) -> None:
    """Compare ``path`` with the known SHA-256 (else MD5); move it aside on a mismatch."""
    for algorithm, expected in (("sha256", item.sha256), ("md5", item.md5)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            quarantine.mkdir(parents=True, exist_ok=True)
            kept = quarantine / f"{item.file}.{actual[:12]}.bad"
            os.replace(path, kept)
            raise ChecksumError(
                f"{item.file}: {algorithm} {actual} does not match the manifest's {expected}; "
                f"the file was moved to {kept} and will not be used"
            )
        return


def download(item: Download, downloads: Path, progress: Progress = no_progress) -> Path:
    """Fetch ``item.url`` into ``downloads/item.file``, resuming a previous partial download."""
    final = downloads / item.file
    if final.is_file():
        return final
    downloads.mkdir(parents=True, exist_ok=True)
    partial = downloads / f"{item.file}.part"
    have = partial.stat().st_size if partial.is_file() else 0
    response = _open(item.url, have)
    if response is not None:
        with response:
            _receive(response, partial, have, item.url, progress)
    check_file(partial, item, downloads / "quarantine")
    os.replace(partial, final)
    return final


def _open(url: str, have: int) -> Any:
    """The server's answer, asking for the bytes after the ``have`` already kept; None when
    those bytes are the whole file already."""
    request = urllib.request.Request(url, headers={"User-Agent": "bench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete
            return None
        raise BenchError(f"{url}: download failed (HTTP {error.code} {error.reason})") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise BenchError(
            f"{url}: download failed ({reason}); run the command again to resume"
        ) from None


def _receive(response: Any, partial: Path, have: int, url: str, progress: Progress) -> None:
    """Append the answer to ``partial`` (or start it over when the server ignored the
    range), with progress; an interrupted or short answer is an error that says to resume."""
    resumed = have and getattr(response, "status", 200) == 206
    if not resumed:
        have = 0  # the server ignored the Range request: start over
    length = response.headers.get("Content-Length")
    total = have + int(length) if length is not None else None
    done = have
    try:
        with partial.open("ab" if resumed else "wb") as handle, progress(total) as advance:
            advance(have)
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                done += len(block)
                advance(len(block))
    except OSError as error:
        raise BenchError(
            f"{url}: download interrupted ({error}); run the command again to resume"
        ) from None
    if total is not None and done < total:
        raise BenchError(
            f"{url}: download ended early ({done} of {total} bytes); "
            "run the command again to resume"
        )


def _member_problem(
    name: str, link_target: str | None, is_link: bool, is_special: bool
) -> str | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        return "absolute path"
    if ".." in path.parts:
        return "path with '..'"
    if is_special:
        return "device, FIFO or other special file"
    if is_link:
        target = PurePosixPath((link_target or "").replace("\\", "/"))
        if target.is_absolute():
            return f"link to absolute path {target}"
        depth = 0
        for part in (*path.parent.parts, *target.parts):
            depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
            if depth < 0:
                return f"link escaping the target ({target})"
    return None


def _check_members(archive: Path) -> None:
    problems = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                mode = info.external_attr >> 16
                is_link = stat.S_ISLNK(mode)
                target = bundle.read(info).decode("utf-8", "replace") if is_link else None
                problem = _member_problem(info.filename, target, is_link, False)
                if problem:
                    problems.append(f"{info.filename} ({problem})")
    else:
        with tarfile.open(archive) as bundle:
            for member in bundle.getmembers():
                special = not (
                    member.isfile() or member.isdir() or member.issym() or member.islnk()
                )
                problem = _member_problem(
                    member.name, member.linkname, member.issym() or member.islnk(), special
                )
                if member.islnk() and problem is None:
                    # hard link targets are relative to the archive root, not the member
                    problem = _member_problem(member.linkname, None, False, False)
                if problem:
                    problems.append(f"{member.name} ({problem})")
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise UnsafeArchiveError(
            f"{archive}: refused unsafe entry {problems[0]}{more}; nothing extracted"
        )


def archive_top_entries(archive: Path) -> set[str]:
    """The first path component of every member of a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            names = bundle.namelist()
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            names = bundle.getnames()
    else:
        raise BenchError(f"{archive}: not a zip or tar archive")
    return {name.strip("/").split("/")[0] for name in names if name.strip("/")}


def extract(archive: Path, target: Path) -> Path:
    """Unpack ``archive`` into ``target`` (merged if it exists) after checking every member."""
    if not (zipfile.is_zipfile(archive) or tarfile.is_tarfile(archive)):
        raise BenchError(f"{archive}: not a zip or tar archive")
    _check_members(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(staging)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(staging, filter="data")
        if not target.exists():
            staging.rename(target)
            return target
        entries = sorted(staging.iterdir())
        for entry in entries:
            if (target / entry.name).exists():
                raise BenchError(
                    f"{target / entry.name}: already exists; remove it to extract {archive.name} again"
                )
        for entry in entries:
            entry.rename(target / entry.name)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
