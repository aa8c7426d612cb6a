"""Reader for the official UCSD Book Graph files of the Goodreads Young Adult genre.

Files in `data_dir` (Wan & McAuley, RecSys 2018):

goodreads_interactions_young_adult.json.gz (required)
    JSON lines: user_id, book_id, is_read, rating (0 = unrated), date_added, and fields that
    are not read (review_id, date_updated, read_at, ...).
goodreads_books_young_adult.json.gz (optional)
    One book per line: book_id, title, description, authors, series, popular_shelves,
    language_code, publication_year, ... Without it the dataset has no book metadata.
goodreads_book_authors.json.gz, goodreads_book_series.json.gz,
goodreads_book_genres_initial.json.gz (optional)
    Author names, series titles and genre counts that enrich the books table.

Files are decompressed in blocks of whole lines and each block is parsed by polars, so the
35M-row interactions file never passes through a per-line Python loop.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
from polars.exceptions import PolarsError
from tqdm.auto import tqdm

from bookrecs.columns import (
    AUTHORS,
    DATE,
    DESCRIPTION,
    ITEM_ID,
    LANGUAGE,
    SERIES,
    TAG_COUNTS,
    TAGS,
    TITLE,
    YEAR,
)
from bookrecs.data.dataset import Dataset, DropReport, FileRecord
from bookrecs.data.manifest import file_record
from bookrecs.data.validate import (
    REASON_BAD_JSON,
    aligned_tag_counts,
    clean_books,
    clean_interactions,
    gzip_error_message,
    log_drops,
    parse_goodreads_date,
    require_file,
)
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.data")

INTERACTIONS_FILE = "goodreads_interactions_young_adult.json.gz"
BOOKS_FILE = "goodreads_books_young_adult.json.gz"
AUTHORS_FILE = "goodreads_book_authors.json.gz"
SERIES_FILE = "goodreads_book_series.json.gz"
GENRES_FILE = "goodreads_book_genres_initial.json.gz"

REFETCH_FIX = "delete it and run `make data` again"
BLOCK_BYTES = 32 << 20
MAX_BAD_LINES = 1000

INTERACTION_FIELDS: dict[str, pl.DataType] = {
    "user_id": pl.Utf8(),
    "book_id": pl.Utf8(),
    "rating": pl.Utf8(),
    "is_read": pl.Utf8(),
    "date_added": pl.Utf8(),
}
BOOK_FIELDS: dict[str, pl.DataType] = {
    "book_id": pl.Utf8(),
    "title": pl.Utf8(),
    "title_without_series": pl.Utf8(),
    "description": pl.Utf8(),
    "authors": pl.List(pl.Struct({"author_id": pl.Utf8(), "role": pl.Utf8()})),
    "series": pl.List(pl.Utf8()),
    "popular_shelves": pl.List(pl.Struct({"count": pl.Utf8(), "name": pl.Utf8()})),
    "language_code": pl.Utf8(),
    "publication_year": pl.Utf8(),
}


@dataclass(frozen=True)
class NameLookup:
    """An optional file that maps the ids in one books column to names."""

    column: str
    file_name: str
    id_field: str
    name_field: str

    @property
    def fields(self) -> dict[str, pl.DataType]:
        return {self.id_field: pl.Utf8(), self.name_field: pl.Utf8()}


AUTHOR_NAMES = NameLookup(AUTHORS, AUTHORS_FILE, "author_id", "name")
SERIES_TITLES = NameLookup(SERIES, SERIES_FILE, "series_id", "title")


@dataclass
class LineCount:
    """Lines seen in one file: all non-empty ones, and those that could not be parsed."""

    rows: int = 0
    bad: int = 0


def read_goodreads(data_dir: Path, show_progress: bool = True) -> Dataset:
    """Read the UCSD Goodreads YA files in `data_dir` into a validated `Dataset`.

    Parameters
    ----------
    data_dir
        Folder holding `goodreads_interactions_young_adult.json.gz` and, optionally, the books,
        authors, series and genres files (see the module docstring).
    show_progress
        Show a tqdm bar per file, measured in compressed bytes read.

    Returns
    -------
    Dataset
        Interactions with item_id = book_id; books with author names, series titles and
        tags (popular shelves, then genres) when those files exist, or None without the
        books file, with a note that content features are off.

    Raises
    ------
    DataError
        The interactions file is missing, truncated, not gzip, not JSON lines or lacks a field.
    """
    data_dir = Path(data_dir)
    drops = DropReport()
    manifest: list[FileRecord] = []
    notes: list[str] = []

    interactions = read_interactions(data_dir / INTERACTIONS_FILE, drops, manifest, show_progress)

    books_path = data_dir / BOOKS_FILE
    if books_path.is_file():
        books = read_books(data_dir, drops, manifest, show_progress)
    else:
        books = None
        note = (
            f"no book metadata: {books_path} not found, so content features are off "
            "(titles, authors, series and tags are unknown); run `make data` to download it"
        )
        notes.append(note)
        logger.warning(note)

    log_drops(drops, "goodreads", interactions.height)
    return Dataset(
        name="goodreads",
        interactions=interactions,
        books=books,
        drops=drops,
        manifest=manifest,
        notes=notes,
    )


def read_interactions(
    path: Path, drops: DropReport, manifest: list[FileRecord], show_progress: bool = True
) -> pl.DataFrame:
    """Read and validate the interactions file, and append its record to `manifest`."""
    require_file(path, "download it with `make data` or pass --data-dir pointing at it")
    count = LineCount()
    frames = []
    blocks = iter_json_blocks(
        path, INTERACTION_FIELDS, drops, count, show_progress, required=tuple(INTERACTION_FIELDS)
    )
    for block in blocks:
        raw = block.rename({"book_id": ITEM_ID})
        frames.append(clean_interactions(raw, path.name, drops, parse_goodreads_date(DATE)))
    manifest.append(file_record(path, count.rows))
    if not frames:
        raise DataError(f"{path} contains no interactions: {REFETCH_FIX}")
    interactions = pl.concat(frames, rechunk=True)
    if interactions.height == 0:
        log_drops(drops, "goodreads", 0)
        reasons = ", ".join(
            f"{rows:,} {reason}" for (source, reason), rows in sorted(drops.counts.items())
        )
        raise DataError(
            f"{path} has no valid interactions: all {count.rows:,} lines were dropped "
            f"({reasons}). Check that it is the UCSD Goodreads interactions file, or {REFETCH_FIX}"
        )
    logger.info("read %s interactions from %s", f"{interactions.height:,}", path)
    return interactions


def read_books(
    data_dir: Path, drops: DropReport, manifest: list[FileRecord], show_progress: bool = True
) -> pl.DataFrame:
    """Read the books file and enrich it with the optional authors, series and genres files."""
    path = data_dir / BOOKS_FILE
    count = LineCount()
    frames = [
        _book_block_to_schema(block)
        for block in iter_json_blocks(
            path, BOOK_FIELDS, drops, count, show_progress, required=("book_id",)
        )
    ]
    manifest.append(file_record(path, count.rows))
    if not frames:
        raise DataError(f"{path} contains no books: {REFETCH_FIX}")
    books = clean_books(pl.concat(frames), path.name, drops)

    for lookup in (AUTHOR_NAMES, SERIES_TITLES):
        books = _replace_ids(books, lookup, data_dir, drops, manifest, show_progress)
    genres_path = data_dir / GENRES_FILE
    if genres_path.is_file():
        genres = read_genres(genres_path, books.get_column(ITEM_ID), drops, manifest, show_progress)
        books = add_genre_tags(books, genres)
    logger.info("read %s books from %s", f"{books.height:,}", path)
    return books


def _book_block_to_schema(block: pl.DataFrame) -> pl.DataFrame:
    title = pl.col("title").str.strip_chars()
    return block.select(
        pl.col("book_id").alias(ITEM_ID),
        pl.when(title.str.len_bytes() > 0)
        .then(title)
        .otherwise(pl.col("title_without_series"))
        .alias(TITLE),
        pl.col("description").alias(DESCRIPTION),
        pl.col("authors").list.eval(pl.element().struct.field("author_id")).alias(AUTHORS),
        pl.col("series").alias(SERIES),
        pl.col("popular_shelves").list.eval(pl.element().struct.field("name")).alias(TAGS),
        pl.col("popular_shelves")
        .list.eval(pl.element().struct.field("count").cast(pl.Int64, strict=False))
        .alias(TAG_COUNTS),
        pl.col("publication_year").alias(YEAR),
        pl.col("language_code").alias(LANGUAGE),
    )


def _replace_ids(
    books: pl.DataFrame,
    lookup: NameLookup,
    data_dir: Path,
    drops: DropReport,
    manifest: list[FileRecord],
    show_progress: bool,
) -> pl.DataFrame:
    """Replace the ids in `lookup.column` by names from its file. Ids without a name stay."""
    path = data_dir / lookup.file_name
    column, id_field, name_field = lookup.column, lookup.id_field, lookup.name_field
    if not path.is_file():
        logger.info("%s not found: books keep %s ids instead of names", path, column)
        return books
    needed_ids = books.select(pl.col(column).explode().drop_nulls().unique().alias(id_field))
    count = LineCount()
    names = pl.concat(
        [
            block.join(needed_ids, on=id_field, how="semi")
            for block in iter_json_blocks(
                path, lookup.fields, drops, count, show_progress, required=(id_field,)
            )
        ]
        or [pl.DataFrame(schema=lookup.fields)]
    )
    manifest.append(file_record(path, count.rows))
    names = names.filter(pl.col(name_field).str.strip_chars().str.len_bytes() > 0).unique(
        id_field, keep="first"
    )
    exploded = (
        books.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.col(column))
        .explode(column)
        .join(names, left_on=column, right_on=id_field, how="left", maintain_order="left")
    )
    missing = exploded.filter(pl.col(column).is_not_null() & pl.col(name_field).is_null()).height
    if missing:
        logger.info(
            "%s %s ids have no entry in %s and are kept as ids", f"{missing:,}", column, path.name
        )
    resolved = (
        exploded.with_columns(pl.coalesce(name_field, column).alias(column))
        .group_by("_row", maintain_order=True)
        .agg(pl.col(column).drop_nulls())
        .sort("_row")
    )
    # Polars 2.1 explode drops rows whose list is empty, so rows join back by index instead.
    return (
        books.with_row_index("_row")
        .join(resolved.rename({column: "_resolved"}), on="_row", how="left")
        .with_columns(pl.coalesce("_resolved", column).alias(column))
        .select(books.columns)
    )


def read_genres(
    path: Path,
    item_ids: pl.Series,
    drops: DropReport,
    manifest: list[FileRecord],
    show_progress: bool = True,
) -> pl.DataFrame:
    """Read genre counts for `item_ids` as a long table: item_id, genre, count."""
    count = LineCount()
    parts = []
    known = item_ids.alias("book_id").to_frame()
    for block in iter_json_blocks(path, None, drops, count, show_progress, required=("book_id",)):
        if "book_id" not in block.columns or "genres" not in block.columns:
            continue
        block = block.with_columns(pl.col("book_id").cast(pl.Utf8))
        block = block.join(known, on="book_id", how="semi")
        genres_type = block.schema["genres"]
        if block.height == 0 or not isinstance(genres_type, pl.Struct) or not genres_type.fields:
            continue
        parts.append(
            block.select("book_id", "genres")
            .unnest("genres")
            .unpivot(index="book_id", variable_name="genre", value_name="count")
            .with_columns(pl.col("count").cast(pl.Int64, strict=False))
            .filter(pl.col("count").is_not_null())
            .rename({"book_id": ITEM_ID})
        )
    manifest.append(file_record(path, count.rows))
    if not parts:
        return pl.DataFrame(schema={ITEM_ID: pl.Utf8, "genre": pl.Utf8, "count": pl.Int64})
    return pl.concat(parts)


def add_genre_tags(books: pl.DataFrame, genres: pl.DataFrame) -> pl.DataFrame:
    """Append genres (most counted first) to each book's tags, skipping names already there."""
    if genres.height == 0:
        return books
    per_book = (
        genres.sort([ITEM_ID, "count", "genre"], descending=[False, True, False])
        .group_by(ITEM_ID, maintain_order=True)
        .agg(pl.col("genre").alias("_genres"), pl.col("count").alias("_counts"))
    )
    merged = (
        books.with_row_index("_row")
        .join(per_book, on=ITEM_ID, how="left")
        .sort("_row")
        .with_columns(
            pl.col(TAGS).fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
            pl.col(TAG_COUNTS).fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
        )
    )
    exploded = (
        merged.select("_row", TAGS, "_genres", "_counts")
        .explode(["_genres", "_counts"])
        .filter(pl.col("_genres").is_not_null())
        .filter(~pl.col(TAGS).list.contains(pl.col("_genres")))
        .group_by("_row")
        .agg(pl.col("_genres").alias("_new_tags"), pl.col("_counts").alias("_new_counts"))
    )
    enriched = (
        merged.join(exploded, on="_row", how="left")
        .sort("_row")
        .with_columns(
            pl.concat_list(TAGS, pl.col("_new_tags").fill_null(pl.lit([], dtype=pl.List(pl.Utf8)))),
            pl.concat_list(
                TAG_COUNTS, pl.col("_new_counts").fill_null(pl.lit([], dtype=pl.List(pl.Int64)))
            ),
        )
    )
    return aligned_tag_counts(enriched.select(books.columns))


def iter_json_blocks(
    path: Path,
    fields: dict[str, pl.DataType] | None,
    drops: DropReport,
    count: LineCount,
    show_progress: bool = True,
    required: tuple[str, ...] = (),
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[pl.DataFrame]:
    """Yield one polars frame per block of whole JSON lines read from `path`.

    Parameters
    ----------
    path
        A `.gz` file (decompressed while reading) or a plain JSON-lines file.
    fields
        Fields to keep, with the dtypes to parse them as; None infers the schema per block.
    drops, count
        Lines that are not JSON objects of the expected shape are counted in `drops` (and in
        `count.bad`); all non-empty lines are counted in `count.rows`.
    show_progress
        Show a tqdm bar in compressed bytes read.
    required
        Fields that must exist: one that is null in every line of the first block raises
        `DataError`.
    block_bytes
        Decompressed bytes read per block (before extending to the next line end).

    Raises
    ------
    DataError
        The file is truncated, not gzip, has no JSON object on its first line, lacks a
        required field, or has more than `MAX_BAD_LINES` unparsable lines.
    """
    first = True
    for block in _iter_line_blocks(path, show_progress, block_bytes):
        if first:
            _check_first_line(path, block, fields)
        try:
            frame, bad = _parse_block(block, fields, MAX_BAD_LINES - count.bad)
        except _TooManyBadLines:
            raise DataError(
                f"{path} has more than {MAX_BAD_LINES} lines that are not JSON objects of "
                f"the expected shape, so it is not a UCSD Book Graph file: {REFETCH_FIX}"
            ) from None
        count.rows += frame.height + bad
        count.bad += bad
        drops.add(path.name, REASON_BAD_JSON, bad)
        if first and frame.height > 0:
            _check_fields_present(path, frame, required)
            first = False
        if frame.height:
            yield frame


class _TooManyBadLines(Exception):
    """More than the allowed number of unparsable lines were found."""


def _check_first_line(path: Path, block: bytes, fields: dict[str, pl.DataType] | None) -> None:
    first_line = next((line for line in block.split(b"\n", 50) if line.strip()), b"")
    if not first_line:
        return
    try:
        _read_ndjson(first_line, fields)
    except PolarsError:
        raise DataError(
            f"{path} is not JSON lines (its first line is not a JSON object of the expected "
            f"shape: {first_line[:60]!r}): {REFETCH_FIX}"
        ) from None


def _check_fields_present(path: Path, frame: pl.DataFrame, required: tuple[str, ...]) -> None:
    null_counts = frame.null_count().row(0, named=True)
    absent = [name for name in required if null_counts.get(name, frame.height) == frame.height]
    if absent:
        raise DataError(
            f"{path} has no field {', '.join(repr(name) for name in absent)} in its first "
            f"{frame.height:,} lines, so it is not a UCSD Book Graph file: {REFETCH_FIX}"
        )


def _parse_block(
    block: bytes, fields: dict[str, pl.DataType] | None, budget: int
) -> tuple[pl.DataFrame, int]:
    """Parse a block of lines. Lines that polars rejects are found by bisection and counted.

    Raises `_TooManyBadLines` as soon as more than `budget` lines are bad.
    """
    try:
        return _read_ndjson(block, fields), 0
    except PolarsError:
        pass
    lines = [line for line in block.split(b"\n") if line.strip()]
    frames: list[pl.DataFrame] = []
    bad = _bisect_lines(lines, fields, frames, budget)
    if not frames:
        return _read_ndjson(b"", fields), bad
    return pl.concat(frames, how="diagonal_relaxed"), bad


def _bisect_lines(
    lines: list[bytes],
    fields: dict[str, pl.DataType] | None,
    frames: list[pl.DataFrame],
    budget: int,
) -> int:
    """Append frames of the good lines to `frames` and return the number of bad lines."""
    if not lines:
        return 0
    try:
        frames.append(_read_ndjson(b"\n".join(lines), fields))
        return 0
    except PolarsError:
        if len(lines) == 1:
            if budget < 1:
                raise _TooManyBadLines from None
            return 1
    middle = len(lines) // 2
    bad = _bisect_lines(lines[:middle], fields, frames, budget)
    return bad + _bisect_lines(lines[middle:], fields, frames, budget - bad)


def _read_ndjson(block: bytes, fields: dict[str, pl.DataType] | None) -> pl.DataFrame:
    if fields is None:
        if not block.strip():
            return pl.DataFrame()
        return pl.read_ndjson(block, infer_schema_length=None)
    return pl.read_ndjson(block, schema=fields)


def _iter_line_blocks(path: Path, show_progress: bool, block_bytes: int) -> Iterator[bytes]:
    """Yield blocks of whole lines. The next block is decompressed while the caller parses."""
    raw = _open_raw(path)
    stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw
    bar = tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=path.name,
        disable=not show_progress,
    )
    read_block = _guarded_reader(path, stream, block_bytes)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookrecs-gunzip") as pool:
            pending = pool.submit(read_block)
            carry = b""
            while True:
                data = pending.result()
                bar.update(raw.tell() - bar.n)
                if not data:
                    break
                pending = pool.submit(read_block)
                data = carry + data
                end = data.rfind(b"\n")
                if end < 0:
                    carry = data
                    continue
                carry = data[end + 1 :]
                yield data[: end + 1]
            if carry.strip():
                yield carry
    finally:
        bar.close()
        stream.close()
        raw.close()


def _open_raw(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as error:
        raise DataError(
            f"{path} cannot be opened ({error.strerror}): check its permissions"
        ) from None


def _guarded_reader(path: Path, stream: BinaryIO, block_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return stream.read(block_bytes)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
            raise DataError(gzip_error_message(path, error, REFETCH_FIX)) from None

    return read
