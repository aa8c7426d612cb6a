"""Tests of the resumable download against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bookrecs.data.download import (
    FILES,
    BaseUrlError,
    DownloadError,
    UnreachableError,
    download_all,
    download_file,
    main,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
INTERACTIONS = "goodreads_interactions_young_adult.json.gz"
BOOKS = "goodreads_books_young_adult.json.gz"


class FileServer(ThreadingHTTPServer):
    """Serves files under `root` with Range support and injected faults."""

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cuts: dict[str, list[int]] = {}
        self.ignore_range = False
        self.extra_length = 0
        self.total_offset = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FileServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        requested_range = self.headers.get("Range")
        server.requests.append((self.path, requested_range))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()

        start, status = 0, 200
        if requested_range and not server.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested_range).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]

        self.send_response(status)
        self.send_header("Content-Length", str(len(body) + server.extra_length))
        if status == 206:
            total = len(data) + server.total_offset
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{total}")
        self.end_headers()
        cuts = server.cuts.get(self.path)
        if cuts:
            body = body[: cuts.pop(0)]
            self.close_connection = True
        if server.extra_length:
            self.close_connection = True
        self.wfile.write(body)


def gzip_bytes(seed: int, lines: int = 8_000) -> bytes:
    text = b"".join(
        b'{"n": %d, "pad": "%s"}\n' % (i, os.urandom(16).hex().encode()) for i in range(lines)
    )
    return gzip.compress(text + bytes([seed]), compresslevel=1)


@pytest.fixture()
def remote(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "remote"
    for index, remote_file in enumerate(FILES):
        path = root / remote_file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip_bytes(index))
    server = FileServer(root)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(server: FileServer, dest: Path, name: str = INTERACTIONS, **options) -> Path:
    url = server.base_url + f"byGenre/{name}"
    options.setdefault("show_progress", False)
    options.setdefault("retry_wait", 0.0)
    return download_file(url, dest, **options)


def test_all_files(remote, tmp_path):
    dest = tmp_path / "raw"

    paths = download_all(dest, remote.base_url, show_progress=False, retry_wait=0.0)

    assert [p.name for p in paths] == [f.name for f in FILES]
    for remote_file in FILES:
        assert (dest / remote_file.name).read_bytes() == (
            remote.root / remote_file.path
        ).read_bytes()
    assert list(dest.glob("*.part")) == []


def test_complete_file_skipped(remote, tmp_path):
    dest = tmp_path / "raw"
    fetch(remote, dest)
    remote.requests.clear()

    fetch(remote, dest)

    assert remote.requests == []


def test_resume_in_same_run(remote, tmp_path):
    remote.cuts[f"/byGenre/{INTERACTIONS}"] = [100_000]

    path = fetch(remote, tmp_path, retries=2)

    assert path.read_bytes() == (remote.root / "byGenre" / INTERACTIONS).read_bytes()
    assert remote.requests[1] == (f"/byGenre/{INTERACTIONS}", "bytes=100000-")


def test_resume_next_run(remote, tmp_path):
    size = (remote.root / "byGenre" / INTERACTIONS).stat().st_size
    assert size > 110_000
    remote.cuts[f"/byGenre/{INTERACTIONS}"] = [50_000, 60_000]

    with pytest.raises(DownloadError, match="run the command again to resume"):
        fetch(remote, tmp_path, retries=1)

    part = tmp_path / f"{INTERACTIONS}.part"
    assert part.stat().st_size == 110_000
    assert not (tmp_path / INTERACTIONS).exists()
    path = fetch(remote, tmp_path, retries=0)
    assert path.read_bytes() == (remote.root / "byGenre" / INTERACTIONS).read_bytes()
    assert remote.requests[-1][1] == "bytes=110000-"


def test_range_ignored(remote, tmp_path):
    expected = (remote.root / "byGenre" / INTERACTIONS).read_bytes()
    (tmp_path / f"{INTERACTIONS}.part").write_bytes(b"stale bytes")
    remote.ignore_range = True

    path = fetch(remote, tmp_path)

    assert path.read_bytes() == expected


def test_stale_part_larger(remote, tmp_path):
    expected = (remote.root / "byGenre" / INTERACTIONS).read_bytes()
    (tmp_path / f"{INTERACTIONS}.part").write_bytes(expected + b"x" * 10)

    path = fetch(remote, tmp_path)

    assert path.read_bytes() == expected


def test_short_body(remote, tmp_path):
    remote.extra_length = 100
    size = (remote.root / "byGenre" / INTERACTIONS).stat().st_size

    with pytest.raises(DownloadError) as caught:
        fetch(remote, tmp_path, retries=1)

    assert f"of {size + 100:,} bytes" in str(caught.value)
    assert not (tmp_path / INTERACTIONS).exists()


def test_size_above_total(remote, tmp_path):
    (tmp_path / f"{INTERACTIONS}.part").write_bytes(
        (remote.root / "byGenre" / INTERACTIONS).read_bytes()[:1000]
    )
    remote.total_offset = -500

    with pytest.raises(DownloadError, match="but the server announced"):
        fetch(remote, tmp_path)

    assert not (tmp_path / f"{INTERACTIONS}.part").exists()


def test_html_page_not_gzip(remote, tmp_path):
    (remote.root / "byGenre" / INTERACTIONS).write_bytes(
        b"\n<!DOCTYPE html><html><body>Sign in</body></html>"
    )

    dest = tmp_path / "raw"

    with pytest.raises(DownloadError, match="did not return the expected gzip file") as caught:
        fetch(remote, dest)

    message = str(caught.value)
    assert f"{remote.base_url}byGenre/{INTERACTIONS}" in message
    assert "it sent an HTML page of 49 bytes" in message
    assert "--base-url" in message
    assert "run the command again" not in message
    assert list(dest.iterdir()) == []


def test_corrupt_gzip(remote, tmp_path):
    (remote.root / "byGenre" / INTERACTIONS).write_bytes(b"plain text, not gzip")

    dest = tmp_path / "raw"

    with pytest.raises(DownloadError, match="did not return the expected gzip file") as caught:
        fetch(remote, dest)

    assert "BadGzipFile: Not a gzipped file" in str(caught.value)
    assert list(dest.iterdir()) == []


def test_truncated_gzip(remote, tmp_path):
    path = remote.root / "byGenre" / INTERACTIONS
    path.write_bytes(path.read_bytes()[:-1000])

    with pytest.raises(DownloadError, match="truncated"):
        fetch(remote, tmp_path)


def test_connection_refused(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/byGenre/{INTERACTIONS}"

    with pytest.raises(UnreachableError, match="cannot reach 127.0.0.1"):
        download_file(url, tmp_path, show_progress=False, retry_wait=0.0)


def test_optional_file_missing(remote, tmp_path, caplog):
    (remote.root / "goodreads_book_series.json.gz").unlink()

    paths = download_all(tmp_path, remote.base_url, show_progress=False, retry_wait=0.0)

    assert [p.name for p in paths] == [f.name for f in FILES if "series" not in f.name]
    assert any("optional file goodreads_book_series" in r.getMessage() for r in caplog.records)


def test_required_file_missing(remote, tmp_path):
    (remote.root / "byGenre" / BOOKS).unlink()

    with pytest.raises(DownloadError, match="HTTP 404"):
        download_all(tmp_path, remote.base_url, show_progress=False, retry_wait=0.0)


def test_cli_selected_files(remote, tmp_path, capsys):
    dest = tmp_path / "raw"

    status = main(
        ["--dest", str(dest), "--base-url", remote.base_url, "--files", BOOKS, "--no-progress"]
    )

    assert status == 0
    assert [p.name for p in dest.iterdir()] == [BOOKS]
    assert "1 files ready" in capsys.readouterr().out


def test_cli_unknown_file(tmp_path, capsys):
    status = main(["--dest", str(tmp_path), "--files", "nope.json.gz", "--no-progress"])

    assert status == 1
    assert "unknown file nope.json.gz" in capsys.readouterr().err


def test_cli_offline(tmp_path):
    dest = tmp_path / "raw"
    command = [
        sys.executable,
        "-m",
        "bookrecs.data.download",
        "--dest",
        str(dest),
        "--base-url",
        f"http://127.0.0.1:{closed_port()}/",
        "--no-progress",
    ]

    result = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach 127.0.0.1: " in result.stderr
    assert f"download the files by hand into {dest}/" in result.stderr


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("ftp//nonsense", "has no scheme"),
        ("127.0.0.1:8000", "has no scheme"),
        ("ftp://127.0.0.1/", "uses the scheme 'ftp'"),
        ("http:///goodreads/", "has no host"),
    ],
)
def test_cli_invalid_base_url(tmp_path, capsys, base_url, problem):
    status = main(["--dest", str(tmp_path), "--base-url", base_url, "--no-progress"])

    assert status == 2
    error = capsys.readouterr().err
    assert f"error: invalid --base-url: base URL {base_url!r} {problem}" in error
    assert "http:// or https://" in error
    assert list(tmp_path.iterdir()) == []


def test_file_url_scheme_rejected(tmp_path):
    with pytest.raises(BaseUrlError, match="uses the scheme 'file'"):
        download_file(f"file://{tmp_path}/x.json.gz", tmp_path, show_progress=False)
