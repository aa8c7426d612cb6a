"""Download the official UCSD Book Graph files for the Goodreads Young Adult genre.

Usage::

    python -m bookrecs.data.download --dest data/raw [--base-url URL] [--files NAME ...]

Each file is written to `<name>.part` and renamed only after its size matches the server's
Content-Length and its gzip stream decompresses to the end. An interrupted download resumes
from the `.part` file with an HTTP Range request, both within one run (up to `--retries`
times) and when the command is run again. Files that are complete already are skipped.
The two Young Adult files are required. A failure on the authors, series or genres file is
logged as a warning, and the other files are still fetched.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import re
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from tqdm.auto import tqdm

from bookrecs.data.validate import check_gzip, gzip_error_message
from bookrecs.exceptions import BookRecsError

logger = logging.getLogger("bookrecs.data.download")

DEFAULT_BASE_URL = "https://mcauleylab.ucsd.edu/public_datasets/gdrive/goodreads/"
DEFAULT_DEST = Path("data/raw")
BLOCK_SIZE = 1 << 20
USER_AGENT = "bookrecs-download/1"


@dataclass(frozen=True)
class RemoteFile:
    """One file of the dataset: its path under the base URL and whether training needs it."""

    path: str
    required: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


FILES: tuple[RemoteFile, ...] = (
    RemoteFile("byGenre/goodreads_interactions_young_adult.json.gz", required=True),
    RemoteFile("byGenre/goodreads_books_young_adult.json.gz", required=True),
    RemoteFile("goodreads_book_authors.json.gz", required=False),
    RemoteFile("goodreads_book_series.json.gz", required=False),
    RemoteFile("goodreads_book_genres_initial.json.gz", required=False),
)


class DownloadError(BookRecsError):
    """A file could not be downloaded completely. The message states why and what to do."""


class UnreachableError(DownloadError):
    """The server could not be reached at all."""


class BaseUrlError(DownloadError):
    """The base URL is not an http or https URL with a host."""


URL_SCHEMES = ("http", "https")
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")


def check_url(url: str, label: str = "URL") -> str:
    """Return `url` without surrounding spaces, or raise `BaseUrlError` naming what is wrong.

    A valid URL has the scheme http or https and a host. `label` names the URL in the message.
    """
    example = f"pass an http:// or https:// URL such as {DEFAULT_BASE_URL}"
    url = url.strip()
    parts = urlsplit(url)
    if "://" not in url:
        raise BaseUrlError(f"{label} {url!r} has no scheme: {example}")
    if parts.scheme.lower() not in URL_SCHEMES:
        raise BaseUrlError(
            f"{label} {url!r} uses the scheme {parts.scheme!r}, which is not supported: {example}"
        )
    if not parts.hostname:
        raise BaseUrlError(f"{label} {url!r} has no host: {example}")
    return url


def check_base_url(base_url: str) -> str:
    """Return `base_url` with a trailing slash, or raise `BaseUrlError` (see `check_url`)."""
    base = check_url(base_url, "base URL")
    return base if base.endswith("/") else base + "/"


def download_file(
    url: str,
    dest_dir: Path,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    show_progress: bool = True,
    retry_wait: float = 2.0,
) -> Path:
    """Download `url` into `dest_dir`, resuming a partial `.part` file.

    Parameters
    ----------
    url
        File URL; the last path segment is the file name.
    dest_dir
        Folder that receives the file (created when missing).
    retries
        Extra attempts after a dropped connection; each resumes where the last one stopped.
    timeout
        Seconds to wait for the connection and for each read.
    show_progress
        Show a tqdm bar in bytes.
    retry_wait
        Seconds to wait before the first retry; doubled for each next one.

    Returns
    -------
    Path
        The complete file.

    Raises
    ------
    BaseUrlError
        `url` is not an http or https URL with a host.
    UnreachableError
        The host refused or dropped the connection, or its name did not resolve.
    DownloadError
        The server returned an HTTP error, the size does not match Content-Length after every
        retry, or the file is not a complete gzip stream.
    """
    url = check_url(url)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    final = dest_dir / name
    if final.is_file():
        logger.info("%s exists, skipping it (delete it to download it again)", final)
        return final
    part = dest_dir / f"{name}.part"

    attempt = 0
    while True:
        try:
            _fetch_to_part(url, part, timeout, show_progress)
            break
        except _Interrupted as error:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{name}: transfer stopped at {error.progress} "
                    f"after {retries} retries ({error.reason}); run the command again to resume "
                    f"from {part}"
                ) from None
            wait = retry_wait * 2 ** (attempt - 1)
            logger.warning(
                "%s: transfer stopped at %s (%s), resuming in %.0f s (retry %d of %d)",
                name,
                error.progress,
                error.reason,
                wait,
                attempt,
                retries,
            )
            time.sleep(wait)

    logger.info("%s: checking that the gzip stream is complete", name)
    try:
        check_gzip(part)
    except EOFError as error:
        part.unlink()
        raise DownloadError(
            gzip_error_message(part, error, f"it was deleted; run the command again ({url})")
        ) from None
    except (gzip.BadGzipFile, zlib.error) as error:
        content = _describe_content(part, error)
        part.unlink()
        raise DownloadError(
            f"the server did not return the expected gzip file for {url} ({content}), so "
            f"{part} was deleted. Check that --base-url points at the folder that contains "
            "byGenre/ (open the URL in a browser to see what the server returns)"
        ) from None
    part.replace(final)
    logger.info("downloaded %s (%s bytes)", final, f"{final.stat().st_size:,}")
    return final


def _describe_content(part: Path, error: Exception) -> str:
    """Say what `part` contains instead of gzip data: an HTML page or the gzip error."""
    with open(part, "rb") as stream:
        head = stream.read(512).lstrip().lower()
    if head.startswith(HTML_MARKERS):
        return f"it sent an HTML page of {part.stat().st_size:,} bytes"
    return f"{type(error).__name__}: {error}"


class _Interrupted(Exception):
    """The connection ended before Content-Length bytes arrived. The `.part` file is kept."""

    def __init__(self, received: int, expected: int | None, reason: str) -> None:
        super().__init__(reason)
        self.received = received
        self.expected = expected
        self.reason = reason

    @property
    def progress(self) -> str:
        if self.expected is None:
            return f"{self.received:,} bytes"
        return f"{self.received:,} of {self.expected:,} bytes"


def _fetch_to_part(url: str, part: Path, timeout: float, show_progress: bool) -> None:
    """Append the rest of `url` to `part`, or restart from zero when the server ignores Range."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")

    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            part.unlink()
            logger.warning("%s is larger than the remote file, so it is downloaded again", part)
            _fetch_to_part(url, part, timeout, show_progress)
            return
        raise DownloadError(
            f"{url} returned HTTP {error.code} {error.reason}: check --base-url"
        ) from None
    except (urllib.error.URLError, OSError, HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise UnreachableError(f"cannot reach {urlsplit(url).hostname}: {reason}") from None

    with response:
        offset, total = _resume_point(response, offset, part)
        _stream(response, part, offset, total, show_progress)


def _resume_point(response: HTTPResponse, offset: int, part: Path) -> tuple[int, int | None]:
    """Return where the body starts in the file and the full file size (None if unknown)."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            total = match.group(2)
            return offset, int(total) if total != "*" else None
        logger.warning("%s: unexpected Content-Range, downloading from the start", part.name)
    elif offset:
        logger.info("%s: server ignored the Range request, downloading from the start", part.name)
    part.unlink(missing_ok=True)
    return 0, int(length) if length is not None else None


def _stream(
    response: HTTPResponse, part: Path, offset: int, total: int | None, show_progress: bool
) -> None:
    received = offset
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        desc=part.name.removesuffix(".part"),
        disable=not show_progress,
    )
    try:
        with open(part, "ab") as sink:
            while True:
                try:
                    block = response.read(BLOCK_SIZE)
                except (HTTPException, OSError) as error:
                    raise _Interrupted(received, total, repr(error)) from None
                if not block:
                    break
                sink.write(block)
                received += len(block)
                bar.update(len(block))
    finally:
        bar.close()

    if total is not None and received < total:
        raise _Interrupted(received, total, "connection closed early")
    if total is not None and received > total:
        part.unlink()
        raise DownloadError(
            f"{part.name}: received {received:,} bytes but the server announced {total:,}. "
            "The partial file was deleted: run the command again"
        )


def download_all(
    dest: Path,
    base_url: str = DEFAULT_BASE_URL,
    names: Sequence[str] | None = None,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    show_progress: bool = True,
    retry_wait: float = 2.0,
) -> list[Path]:
    """Download the dataset files (all of `FILES`, or those named in `names`) into `dest`.

    The keyword options are passed to `download_file`.

    Raises
    ------
    BaseUrlError
        `base_url` is not an http or https URL with a host.
    UnreachableError
        The host cannot be reached (raised at the first file, so nothing else is tried).
    DownloadError
        A required file failed. Failures of optional files are logged as warnings.
    """
    base = check_base_url(base_url)
    selected = select_files(names)
    done = []
    for remote in selected:
        url = urljoin(base, remote.path)
        try:
            path = download_file(
                url,
                dest,
                retries=retries,
                timeout=timeout,
                show_progress=show_progress,
                retry_wait=retry_wait,
            )
        except UnreachableError:
            raise
        except DownloadError as error:
            if remote.required:
                raise
            logger.warning("optional file %s skipped: %s", remote.name, error)
            continue
        done.append(path)
    return done


def select_files(names: Sequence[str] | None) -> list[RemoteFile]:
    """Return the `FILES` entries named in `names` (all when None or empty)."""
    if not names:
        return list(FILES)
    by_name = {remote.name: remote for remote in FILES}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise DownloadError(f"unknown file {', '.join(unknown)}: choose from {', '.join(by_name)}")
    return [by_name[name] for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    The status is 0 on success, 1 when a download failed and 2 for an invalid --base-url. Each
    failure prints one message.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bookrecs.data.download",
        description="Download the UCSD Book Graph Goodreads Young Adult files (resumable).",
    )
    parser.add_argument(
        "--dest", type=Path, default=DEFAULT_DEST, help="output folder (default: data/raw)"
    )
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help="base URL of the folder that contains byGenre/ and the other files",
    )
    parser.add_argument(
        "--files", nargs="+", metavar="NAME", help="file names to fetch (default: all five)"
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="resume attempts per file (default: 3)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="socket timeout in seconds (default: 60)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    try:
        paths = download_all(
            args.dest,
            args.base_url,
            args.files,
            retries=args.retries,
            timeout=args.timeout,
            show_progress=not args.no_progress,
        )
    except BaseUrlError as error:
        print(f"error: invalid --base-url: {error}", file=sys.stderr)
        return 2
    except UnreachableError as error:
        print(
            f"{error}. Check your connection or download the files by hand into {args.dest}/",
            file=sys.stderr,
        )
        return 1
    except DownloadError as error:
        print(f"download failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"download failed: cannot write into {args.dest}: {error}", file=sys.stderr)
        return 1
    print(f"{len(paths)} files ready in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
