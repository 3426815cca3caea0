"""Pretrained weights the metrics need: where they live, fetching, importing, verifying.

The files sit in ``config.paths.weights_dir`` under their official names. Only the hash
prefix that the official file names carry is known here (torch hub's convention: the
first 8 hex digits of the SHA-256); no full digest is claimed that was not checked.
Loading code never downloads: a missing file is reported with the command that fixes it.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError, UsageError, choices
from bench.files import CHUNK, atomic_write, sha256


@dataclass(frozen=True)
class WeightFile:
    key: str
    filename: str
    url: str
    used_by: str
    #: hex digits of the SHA-256 known from an official source (a prefix or the full digest)
    sha256_known: str

    @property
    def full_hash_known(self) -> bool:
        return len(self.sha256_known) == 64


WEIGHTS: dict[str, WeightFile] = {
    spec.key: spec
    for spec in (
        WeightFile(
            key="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            used_by="LPIPS (net='alex', version 0.1) backbone",
            sha256_known="7be5be79",
        ),
        WeightFile(
            key="inception",
            filename="weights-inception-2015-12-05-6726825d.pth",
            url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
            used_by="FID / IS / KID (torch-fidelity inception-v3-compat)",
            sha256_known="6726825d",
        ),
    )
}

FIX_HINT = "run `bench weights fetch` on a networked machine, or `bench weights import FILE`"


class WeightsMissing(BenchError):
    """A metric's weights file is not in the weights folder."""


@dataclass(frozen=True)
class Verification:
    path: Path
    sha256: str
    #: "verified" (full digest matches), "prefix-verified" (known prefix matches),
    #: or "mismatch" (the file is not the official one: test or foreign weights)
    state: str

    @property
    def ok(self) -> bool:
        return self.state != "mismatch"

    def as_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "sha256": self.sha256, "verification": self.state}


_digests: dict[tuple[str, int, int], str] = {}


def _digest(path: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256(path)
    return _digests[key]


def _state(spec: WeightFile, digest: str) -> str:
    if not digest.startswith(spec.sha256_known):
        return "mismatch"
    return "verified" if spec.full_hash_known else "prefix-verified"


def get_spec(key: str) -> WeightFile:
    if key not in WEIGHTS:
        raise UsageError(f"unknown weights '{key}'; valid choices: {choices(WEIGHTS)}")
    return WEIGHTS[key]


def weight_path(key: str, weights_dir: Path) -> Path:
    return Path(weights_dir) / get_spec(key).filename


def verify(key: str, weights_dir: Path) -> Verification:
    """Hash the installed file; raises :class:`WeightsMissing` when it is absent."""
    spec = get_spec(key)
    path = weight_path(key, weights_dir)
    if not path.is_file():
        raise WeightsMissing(f"{spec.used_by}: {path} is missing; {FIX_HINT}")
    digest = _digest(path)
    return Verification(path, digest, _state(spec, digest))


def status(weights_dir: Path) -> list[dict[str, str]]:
    """One record per known weights file: present or not, where, and verification."""
    records = []
    for key, spec in WEIGHTS.items():
        record = {"key": key, "file": spec.filename, "used_by": spec.used_by}
        try:
            record.update(verify(key, weights_dir).as_dict(), present="yes")
        except WeightsMissing:
            path = str(weight_path(key, weights_dir))
            record.update(path=path, sha256="", verification="missing", present="no")
        records.append(record)
    return records


def fetch(key: str, weights_dir: Path, force: bool = False, timeout: float = 60.0) -> Verification:
    """Download from the official URL, check the known hash, then rename into place.

    A hash mismatch or a failed download leaves nothing under the real name.
    """
    spec = get_spec(key)
    target = weight_path(key, weights_dir)
    if target.is_file() and not force:
        found = verify(key, weights_dir)
        if found.ok:
            return found
    digest_of_download = _download(spec.url, target, spec, timeout)
    return Verification(target, digest_of_download, _state(spec, digest_of_download))


def _download(url: str, target: Path, spec: WeightFile, timeout: float) -> str:

    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            atomic_write(target) as handle,
        ):
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                handle.write(block)
            if not digest.hexdigest().startswith(spec.sha256_known):
                raise BenchError(
                    f"{url}: SHA-256 {digest.hexdigest()} does not start with the official "
                    f"{spec.sha256_known}; nothing was installed"
                )
    except OSError as error:  # URLError, timeouts, refused connections
        raise BenchError(f"cannot download {url} ({error}); {FIX_HINT}") from None
    return digest.hexdigest()


def import_file(
    source: Path, weights_dir: Path, key: str | None = None, allow_mismatch: bool = False
) -> Verification:
    """Install a weights file obtained elsewhere, after checking its hash.

    The target is chosen by ``key``, else by the file's name, else by its hash prefix.
    ``allow_mismatch`` installs a non-official file (recorded as "mismatch" everywhere).
    """
    if not source.is_file():
        raise UsageError(f"{source}: no such file; pass the downloaded weights file")
    digest = sha256(source)
    if key is None:
        matches = [s.key for s in WEIGHTS.values() if source.name == s.filename]
        matches = matches or [s.key for s in WEIGHTS.values() if digest.startswith(s.sha256_known)]
        if len(matches) != 1:
            raise UsageError(
                f"{source}: cannot tell which weights this is (name and SHA-256 match no "
                f"known file); pass --as with one of: {choices(WEIGHTS)}"
            )
        key = matches[0]
    spec = get_spec(key)
    state = _state(spec, digest)
    if state == "mismatch" and not allow_mismatch:
        raise UsageError(
            f"{source}: SHA-256 {digest} does not start with {spec.sha256_known} of the "
            f"official {spec.filename}; pass --allow-mismatch to install it anyway"
        )
    target = weight_path(key, weights_dir)
    with source.open("rb") as reader, atomic_write(target) as writer:
        shutil.copyfileobj(reader, writer, CHUNK)
    return Verification(target, digest, state)
