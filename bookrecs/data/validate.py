"""Row validation shared by every reader.

Rows with a missing id, an unparsable date, a rating outside 0..5 or an `is_read` value that is
not a boolean are dropped and counted per file and reason in a `DropReport`. Each row is
counted once, under the first reason it fails. Problems with a whole file (missing, truncated,
not JSON lines, lacking a column) raise one `DataError` that names the file and the fix.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
from polars.exceptions import PolarsError

from bookrecs.columns import (
    AUTHORS,
    DATE,
    DESCRIPTION,
    IS_READ,
    ITEM_ID,
    LANGUAGE,
    RATING,
    SERIES,
    TAG_COUNTS,
    TAGS,
    TITLE,
    USER_ID,
    YEAR,
)
from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA, DropReport
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.data")

MIN_RATING = 0.0
MAX_RATING = 5.0

GOODREADS_DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"
"""Format of UCSD Book Graph dates, for example `Wed Mar 29 00:12:52 -0700 2017`."""

# ISO-8601 layouts accepted for text dates. Layouts without an offset are read as UTC.
_ISO_FORMATS_WITH_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_ISO_FORMATS_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")

_TRUE_VALUES = ("true", "1", "yes", "t", "y")
_FALSE_VALUES = ("false", "0", "no", "f", "n")

REASON_MISSING_USER = "missing user_id"
REASON_MISSING_ITEM = "missing item_id"
REASON_BAD_DATE = "unparsable date_added"
REASON_BAD_RATING = "rating not a number in 0..5"
REASON_BAD_IS_READ = "is_read not a boolean"
REASON_BAD_JSON = "line is not a JSON object"
REASON_DUPLICATE_ITEM = "duplicate item_id"


def require_columns(columns: Iterable[str], required: Sequence[str], path: Path, fix: str) -> None:
    """Raise `DataError` when `path` lacks any of the `required` columns.

    Parameters
    ----------
    columns
        Column names found in the file.
    required
        Column names the reader needs.
    path
        File the columns came from, named in the message.
    fix
        What the user should do, appended to the message.
    """
    present = set(columns)
    missing = [name for name in required if name not in present]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(repr(m) for m in missing)} "
            f"(found: {', '.join(sorted(present)) or 'none'}): {fix}"
        )


def require_file(path: Path, fix: str) -> Path:
    """Return `path` when it is a file, else raise `DataError` naming it and `fix`."""
    if not path.is_file():
        raise DataError(f"{path} not found: {fix}")
    return path


def gzip_error_message(path: Path, error: Exception, fix: str) -> str:
    """Describe a gzip failure of `path` in one sentence that ends with `fix`."""
    if isinstance(error, EOFError):
        return f"{path} is truncated (gzip stream ended early): {fix}"
    if isinstance(error, gzip.BadGzipFile):
        return f"{path} is not a gzip file ({error}): {fix}"
    if isinstance(error, zlib.error):
        return f"{path} is corrupt (gzip data error: {error}): {fix}"
    return f"{path} cannot be read ({error}): {fix}"


def check_gzip(path: Path, block_size: int = 1 << 20) -> None:
    """Decompress `path` to its end to prove it is a complete gzip file.

    Raises
    ------
    EOFError, gzip.BadGzipFile, zlib.error
        As raised by `gzip`, so callers can word the message for their context.
    """
    with gzip.open(path, "rb") as stream:
        while stream.read(block_size):
            pass


def parse_ids(column: str) -> pl.Expr:
    """Cast an id column to stripped text, with empty strings as null."""
    text = pl.col(column).cast(pl.Utf8).str.strip_chars()
    return pl.when(text.str.len_bytes() > 0).then(text).otherwise(None)


def parse_rating(column: str = RATING) -> pl.Expr:
    """Cast a rating column to Float32. Text that is not a number becomes null."""
    return pl.col(column).cast(pl.Utf8).str.strip_chars().cast(pl.Float32, strict=False)


def parse_bool(column: str = IS_READ) -> pl.Expr:
    """Parse booleans written as true/false, 1/0, yes/no, t/f or y/n (any case), else null."""
    text = pl.col(column).cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    return (
        pl.when(text.is_in(_TRUE_VALUES))
        .then(True)
        .when(text.is_in(_FALSE_VALUES))
        .then(False)
        .otherwise(None)
    )


def parse_goodreads_date(column: str = DATE) -> pl.Expr:
    """Parse UCSD dates such as `Wed Mar 29 00:12:52 -0700 2017` to UTC, or null if invalid."""
    return (
        pl.col(column)
        .str.strptime(pl.Datetime("us"), GOODREADS_DATE_FORMAT, strict=False)
        .dt.convert_time_zone("UTC")
    )


def parse_iso_date(column: str = DATE) -> pl.Expr:
    """Parse ISO-8601 text to UTC. Text without an offset is read as UTC, invalid text as null."""
    text = pl.col(column).cast(pl.Utf8).str.strip_chars()
    candidates = [
        text.str.strptime(pl.Datetime("us", "UTC"), layout, strict=False)
        for layout in _ISO_FORMATS_WITH_OFFSET
    ]
    candidates += [
        text.str.strptime(pl.Datetime("us"), layout, strict=False).dt.replace_time_zone("UTC")
        for layout in _ISO_FORMATS_NAIVE
    ]
    return pl.coalesce(candidates)


def parse_timestamp(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Parse a timestamp column of any dtype to Datetime(us, UTC), with null for invalid values.

    Datetimes are converted to UTC (naive ones are taken as UTC). Numbers are Unix seconds
    between 1973 and 2100; others (milliseconds, 20170329) become null.
    Text may be ISO-8601, Unix seconds or the Goodreads layout.
    """
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime):
        values = pl.col(column)
        if dtype.time_zone is None:
            values = values.dt.replace_time_zone("UTC")
        return values.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if isinstance(dtype, pl.Date):
        return pl.col(column).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        return _from_unix_seconds(pl.col(column).cast(pl.Float64, strict=False))
    text = pl.col(column).cast(pl.Utf8).str.strip_chars()
    seconds = text.cast(pl.Float64, strict=False)
    return pl.coalesce(
        _from_unix_seconds(seconds), parse_iso_date(column), parse_goodreads_date(column)
    )


# Unix seconds accepted as dates: 1973-03-03 to 2100-01-01. Milliseconds (about 1e12 today) and
# numbers such as 20170329 or 2017 fall outside and are dropped as unparsable dates.
MIN_UNIX_SECONDS = 100_000_000
MAX_UNIX_SECONDS = 4_102_444_800


def _from_unix_seconds(seconds: pl.Expr) -> pl.Expr:
    in_range = seconds.is_between(MIN_UNIX_SECONDS, MAX_UNIX_SECONDS, closed="left")
    micros = pl.when(in_range).then((seconds * 1_000_000).round(0)).cast(pl.Int64, strict=False)
    return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")


def clean_interactions(
    frame: pl.DataFrame, source: str, drops: DropReport, date: pl.Expr
) -> pl.DataFrame:
    """Validate raw interactions and return them in `INTERACTION_SCHEMA`.

    Parameters
    ----------
    frame
        Raw rows with columns user_id, item_id, rating, is_read and date_added of any dtype.
    source
        File name under which dropped rows are counted.
    drops
        Report that receives one count per reason.
    date
        Expression that parses the date_added column to Datetime(us, UTC), null when invalid.

    Returns
    -------
    pl.DataFrame
        Valid rows only, with exactly the `INTERACTION_SCHEMA` columns and dtypes.
    """
    parsed = _select_or_raise(
        frame,
        [
            parse_ids(USER_ID).alias(USER_ID),
            parse_ids(ITEM_ID).alias(ITEM_ID),
            parse_rating(RATING).alias(RATING),
            (parse_bool(IS_READ) if frame.schema[IS_READ] != pl.Boolean else pl.col(IS_READ)).alias(
                IS_READ
            ),
            date.alias(DATE),
        ],
        source,
    )
    checks = [
        (REASON_MISSING_USER, pl.col(USER_ID).is_null()),
        (REASON_MISSING_ITEM, pl.col(ITEM_ID).is_null()),
        (REASON_BAD_DATE, pl.col(DATE).is_null()),
        (
            REASON_BAD_RATING,
            pl.col(RATING).is_null()
            | pl.col(RATING).is_nan()
            | (pl.col(RATING) < MIN_RATING)
            | (pl.col(RATING) > MAX_RATING),
        ),
        (REASON_BAD_IS_READ, pl.col(IS_READ).is_null()),
    ]
    return _drop_failing(parsed, checks, source, drops).select(
        pl.col(name).cast(dtype) for name, dtype in INTERACTION_SCHEMA.items()
    )


def _drop_failing(
    frame: pl.DataFrame, checks: list[tuple[str, pl.Expr]], source: str, drops: DropReport
) -> pl.DataFrame:
    """Drop rows failing any check, counting each row once under the first check it fails."""
    if frame.height == 0:
        return frame
    already_bad = pl.lit(False)
    counts = []
    for reason, failing in checks:
        counts.append((failing & ~already_bad).sum().alias(reason))
        already_bad = already_bad | failing
    totals = frame.select(counts).row(0, named=True)
    for reason, rows in totals.items():
        drops.add(source, reason, rows)
    if not any(totals.values()):
        return frame
    return frame.filter(~already_bad)


def list_column(frame: pl.DataFrame, column: str, source: str) -> pl.Expr:
    """Return `column` as List(Utf8): lists are cast, text is split on `|`, null stays null.

    Empty entries and surrounding spaces are removed from every list. Lists of structs or of
    lists raise `DataError` naming `source`, because their text form is not a usable name.
    """
    if column not in frame.columns:
        return pl.lit(None, dtype=pl.List(pl.Utf8))
    dtype = frame.schema[column]
    if isinstance(dtype, pl.List | pl.Array):
        if dtype.inner is not None and dtype.inner.is_nested():
            raise DataError(
                f"{source} column {column!r} has type {dtype}: give a list of names or text "
                "with names separated by `|` (see docs/data.md)"
            )
        values = pl.col(column).cast(pl.List(pl.Utf8))
    elif dtype == pl.Null:
        return pl.lit(None, dtype=pl.List(pl.Utf8))
    else:
        values = pl.col(column).cast(pl.Utf8).str.split("|")
    # Inside list.eval, pl.element() in a filter is the unstripped value, so strip first.
    stripped = values.list.eval(pl.element().str.strip_chars())
    return stripped.list.eval(pl.element().filter(pl.element().str.len_bytes() > 0))


def parse_year(column: str) -> pl.Expr:
    """Parse a publication year to Int32. Empty or non-numeric values become null."""
    return (
        pl.col(column)
        .cast(pl.Utf8)
        .str.strip_chars()
        .cast(pl.Float64, strict=False)
        .cast(pl.Int32, strict=False)
    )


def clean_books(frame: pl.DataFrame, source: str, drops: DropReport) -> pl.DataFrame:
    """Validate book metadata already mapped to `BOOK_SCHEMA` names and return it in that schema.

    Columns absent from `frame` are filled with nulls. Rows without an item_id and repeated
    item_ids (all but the first row) are dropped and counted.
    """
    columns = []
    for name, dtype in BOOK_SCHEMA.items():
        if name == ITEM_ID:
            columns.append(parse_ids(ITEM_ID).alias(ITEM_ID))
        elif name in (AUTHORS, SERIES, TAGS):
            columns.append(list_column(frame, name, source).alias(name))
        elif name == YEAR and name in frame.columns:
            columns.append(parse_year(YEAR).alias(YEAR))
        elif name in frame.columns:
            columns.append(pl.col(name).cast(dtype, strict=False).alias(name))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    books = _select_or_raise(frame, columns, source)
    books = _blank_to_null(books, (TITLE, DESCRIPTION, LANGUAGE))
    checks = [
        (REASON_MISSING_ITEM, pl.col(ITEM_ID).is_null()),
        (REASON_DUPLICATE_ITEM, ~pl.col(ITEM_ID).is_first_distinct()),
    ]
    books = aligned_tag_counts(_drop_failing(books, checks, source, drops))
    return books.select(pl.col(name).cast(dtype) for name, dtype in BOOK_SCHEMA.items())


def _select_or_raise(frame: pl.DataFrame, columns: list[pl.Expr], source: str) -> pl.DataFrame:
    """Apply the parsing expressions, turning a dtype polars cannot convert into `DataError`."""
    try:
        return frame.select(columns)
    except PolarsError as error:
        found = ", ".join(f"{name}: {dtype}" for name, dtype in frame.schema.items())
        reason = str(error).strip().splitlines()[0]
        raise DataError(
            f"{source} has a column of an unsupported type ({reason}; found {found}): "
            "see docs/data.md for the accepted types"
        ) from None


def _blank_to_null(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.col(name).str.strip_chars().str.len_bytes() > 0)
        .then(pl.col(name))
        .otherwise(None)
        .alias(name)
        for name in columns
    )


def aligned_tag_counts(frame: pl.DataFrame) -> pl.DataFrame:
    """Null out `tag_counts` wherever its length differs from `tags`, so the two stay aligned."""
    mismatch = pl.col(TAG_COUNTS).list.len() != pl.col(TAGS).list.len()
    return frame.with_columns(
        pl.when(mismatch.fill_null(False))
        .then(None)
        .otherwise(pl.col(TAG_COUNTS))
        .alias(TAG_COUNTS)
    )


def log_drops(drops: DropReport, dataset_name: str, kept_rows: int) -> None:
    """Log one warning that sums up every dropped row of a dataset (nothing when none were)."""
    if drops.total == 0:
        logger.info("%s: %s rows read, none dropped", dataset_name, f"{kept_rows:,}")
        return
    logger.warning(
        "%s: %s rows kept, %s dropped as invalid:\n%s",
        dataset_name,
        f"{kept_rows:,}",
        f"{drops.total:,}",
        drops,
    )


def read_table(path: Path, fix: str) -> pl.DataFrame:
    """Read a Parquet or CSV file. A missing or unreadable file raises one `DataError`.

    CSV cells are all read as text so that bad values reach row validation instead of failing
    the whole file; Parquet columns keep their stored dtypes.
    """
    require_file(path, fix)
    suffix = path.suffix.lower()
    try:
        if suffix in (".pq", ".parquet"):
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema=False)
    except (PolarsError, OSError, pa.ArrowException) as error:
        kind = "Parquet" if suffix in (".pq", ".parquet") else "CSV"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise DataError(f"{path} is not a readable {kind} file ({first_line}): {fix}") from None
    raise DataError(f"{path} has an unsupported suffix {suffix!r}: use .csv, .parquet or .pq")


def with_interaction_defaults(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill a missing rating with 0 (unrated) and a missing is_read with True.

    A whole missing column and an empty or null cell get the same default. A present value
    that is invalid (a rating of 7, an is_read of "maybe") is left for validation to drop.
    """
    return frame.with_columns(
        _default_text(frame, RATING, "0").alias(RATING),
        _default_text(frame, IS_READ, "true").alias(IS_READ),
    )


def _default_text(frame: pl.DataFrame, column: str, default: str) -> pl.Expr:
    if column not in frame.columns:
        return pl.lit(default)
    text = pl.col(column).cast(pl.Utf8).str.strip_chars()
    return (
        pl.when(text.is_null() | (text.str.len_bytes() == 0)).then(pl.lit(default)).otherwise(text)
    )
