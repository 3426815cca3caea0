"""Downloads (resume, checksum, quarantine) against a local server, and safe extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from bench.data.fetch import ChecksumError, UnsafeArchiveError, download, extract
from bench.data.spec import Download
from bench.errors import BenchError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD; honours Range unless ``ignore_range``; ``cut`` bytes: stop early."""

    seen_ranges: list[str | None] = []
    ignore_range = False
    cut: int | None = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        requested = self.headers.get("Range")
        type(self).seen_ranges.append(requested)
        start = 0
        if requested and not self.ignore_range:
            start = int(requested.removeprefix("bytes=").rstrip("-"))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if self.cut is None else body[: self.cut])


@pytest.fixture
def server():
    RangeHandler.seen_ranges = []
    RangeHandler.ignore_range = False
    RangeHandler.cut = None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()
    httpd.server_close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_checks_and_renames(server, tmp_path):
    path = download(Download(url=server, file="file.bin", sha256=SHA), tmp_path)
    assert path == tmp_path / "file.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.bin.part").exists()


def test_progress_reports_every_byte(server, tmp_path):
    seen = {}

    from contextlib import contextmanager

    @contextmanager
    def progress(total):
        seen["total"], seen["done"] = total, 0
        yield lambda n: seen.__setitem__("done", seen["done"] + n)

    download(Download(url=server, file="file.bin"), tmp_path, progress)
    assert seen == {"total": len(PAYLOAD), "done": len(PAYLOAD)}


def test_interrupted_download_resumes_with_range(server, tmp_path):
    RangeHandler.cut = 300_000
    with pytest.raises(BenchError, match="ended early .*run the command again to resume"):
        download(Download(url=server, file="file.bin", sha256=SHA), tmp_path)
    partial = tmp_path / "file.bin.part"
    assert partial.stat().st_size == 300_000 and not (tmp_path / "file.bin").exists()
    RangeHandler.cut = None
    path = download(Download(url=server, file="file.bin", sha256=SHA), tmp_path)
    assert RangeHandler.seen_ranges[-1] == "bytes=300000-"
    assert path.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(b"garbage that must not stay in front")
    RangeHandler.ignore_range = True
    path = download(Download(url=server, file="file.bin", sha256=SHA), tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_keeps_the_file_aside(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError, match=r"file.bin: sha256 .* does not match .*quarantine"):
        download(Download(url=server, file="file.bin", sha256=wrong), tmp_path)
    assert not (tmp_path / "file.bin").exists() and not (tmp_path / "file.bin.part").exists()
    kept = list((tmp_path / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == PAYLOAD


def test_md5_and_file_url(tmp_path):
    source = tmp_path / "src" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    path = download(Download(url=source.as_uri(), file="data.bin", md5=md5), tmp_path / "dl")
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError, match="md5"):
        download(Download(url=source.as_uri(), file="other.bin", md5="f" * 32), tmp_path / "dl")


def test_unreachable_url_is_one_clear_error(tmp_path):
    with pytest.raises(BenchError, match=r"download failed"):
        download(Download(url="http://127.0.0.1:9/none", file="x"), tmp_path)


# ------------------------------------------------------------------------ extraction


def make_tar(path: Path, members: list[tuple[str, str, str | bytes]]) -> Path:
    """members: (name, kind 'file'|'sym'|'hard'|'fifo', content or link target)."""
    with tarfile.open(path, "w:gz") as bundle:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value)
                bundle.addfile(info, io.BytesIO(value))
                continue
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[
                kind
            ]
            info.linkname = value
            bundle.addfile(info)
    return path


def test_safe_tar_extracts_with_internal_links(tmp_path):
    archive = make_tar(
        tmp_path / "good.tar.gz",
        [
            ("top/a.txt", "file", b"A"),
            ("top/sub/b.txt", "file", b"B"),
            ("top/sub/link", "sym", "../a.txt"),
        ],
    )
    target = extract(archive, tmp_path / "out")
    assert (target / "top" / "a.txt").read_bytes() == b"A"
    assert (target / "top" / "sub" / "link").read_bytes() == b"A"


@pytest.mark.parametrize(
    "members, reason",
    [
        ([("../evil.txt", "file", b"x")], "path with '..'"),
        ([("/tmp/evil.txt", "file", b"x")], "absolute path"),
        ([("a/../../evil.txt", "file", b"x")], "path with '..'"),
        ([("link", "sym", "../../etc/passwd")], "link escaping the target"),
        ([("link", "sym", "/etc/passwd")], "link to absolute path"),
        ([("hard", "hard", "../outside")], "link escaping the target"),
        ([("a/b/hard", "hard", "../x")], "path with '..'"),
        ([("pipe", "fifo", "")], "special file"),
    ],
)
def test_unsafe_tar_is_refused_and_nothing_is_written(tmp_path, members, reason):
    archive = make_tar(tmp_path / "bad.tar.gz", [("ok.txt", "file", b"fine"), *members])
    target = tmp_path / "out"
    with pytest.raises(
        UnsafeArchiveError, match=rf"bad.tar.gz: refused unsafe entry .*{reason}.*nothing extracted"
    ):
        extract(archive, target)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_unsafe_zip_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ok.txt", "fine")
        bundle.writestr("../../evil.txt", "x")
    with pytest.raises(UnsafeArchiveError, match=r"\.\./\.\./evil.txt \(path with '..'\)"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_symlink_escaping_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        bundle.writestr(info, "../../outside")
    with pytest.raises(UnsafeArchiveError, match="link escaping the target"):
        extract(archive, tmp_path / "out")


def test_extract_into_existing_folder_refuses_to_overwrite(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", [("x/1.txt", "file", b"1"), ("y.txt", "file", b"2")])
    target = tmp_path / "out"
    (target / "x").mkdir(parents=True)
    with pytest.raises(BenchError, match=r"out/x: already exists"):
        extract(archive, target)
    assert not (target / "y.txt").exists()  # nothing half-merged


def test_not_an_archive(tmp_path):
    path = tmp_path / "plain.bin"
    path.write_bytes(b"not an archive at all")
    with pytest.raises(BenchError, match="not a zip or tar archive"):
        extract(path, tmp_path / "out")
