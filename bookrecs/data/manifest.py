"""File records for a run's data manifest: path, size and SHA-256 of every input file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bookrecs.data.dataset import FileRecord

BLOCK_SIZE = 1 << 20


def sha256_file(path: Path, block_size: int = BLOCK_SIZE) -> str:
    """Return the hex SHA-256 of `path`, read in blocks of `block_size` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path, rows: int | None) -> FileRecord:
    """Describe one input file for the manifest.

    Parameters
    ----------
    path
        The file as read; its absolute path is recorded.
    rows
        Rows read from it (before validation drops), or None when not counted.

    Returns
    -------
    FileRecord
        Path, size in bytes, SHA-256 and row count.
    """
    path = Path(path)
    return FileRecord(
        path=str(path.resolve()),
        size_bytes=path.stat().st_size,
        sha256=sha256_file(path),
        rows=None if rows is None else int(rows),
    )
