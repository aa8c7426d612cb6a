"""Content features of books: shelves, authors, series, year, language and text terms.

`ItemFeaturizer` learns its vocabularies from the books of the training period and turns any
book table, including books it has never seen, into a sparse row-normalised matrix.

Leakage rules
-------------
- ratings_count, average_rating, text_reviews_count and similar_books are never read.
- Shelf counts (`tag_counts`) in the UCSD files were collected when the site was crawled,
  after the train/test cut, so they carry popularity from the test period. By default
  (`tag_weighting="binary"`) only shelf names are used and every shelf a book is on counts 1,
  times the shelf's inverse document frequency over the training-period books.
  `tag_weighting="log1p"` uses log(1 + count) instead and is meant for catalogues whose tag
  counts are known at training time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from bookrecs.columns import AUTHORS, DESCRIPTION, LANGUAGE, SERIES, TAG_COUNTS, TAGS, TITLE, YEAR
from bookrecs.exceptions import ConfigError, ModelLoadError, NotFittedError
from bookrecs.interactions import TrainData

logger = logging.getLogger("bookrecs.features")

FEATURES_FILE = "features.json"
FEATURES_FORMAT = 1

GROUPS = ("tags", "authors", "series", "year", "language", "text")

# Shelves that record what a reader did with a book rather than what the book is.
GENERIC_SHELVES = frozenset(
    {
        "to-read",
        "currently-reading",
        "read",
        "owned",
        "books-i-own",
        "owned-books",
        "my-books",
        "favorites",
        "favourites",
        "default",
        "wish-list",
        "wishlist",
        "library",
        "kindle",
        "ebook",
        "ebooks",
        "e-book",
        "to-buy",
        "did-not-finish",
        "dnf",
        "abandoned",
        "re-read",
        "audiobook",
        "audiobooks",
    }
)

DEFAULT_WEIGHTS: dict[str, float] = {
    "tags": 1.0,
    "authors": 1.0,
    "series": 1.0,
    "year": 0.3,
    "language": 0.2,
    "text": 0.5,
}

DEFAULT_YEAR_EDGES = (1950, 1980, 1990, 2000, 2005, 2008, 2010, 2012, 2014, 2016)


@dataclass
class FeaturizerParams:
    """Settings of `ItemFeaturizer`.

    Attributes
    ----------
    weights
        Weight of each feature group (keys from `GROUPS`); 0 switches a group off.
    max_tags, max_authors, max_series, max_terms
        Vocabulary caps; the most frequent values among the fitted books are kept.
    min_tag_books
        A shelf enters the vocabulary only if at least this many fitted books carry it.
    tag_weighting
        "binary" (shelf names only, the default) or "log1p" (log(1 + shelf count)).
    drop_shelves
        Shelf names that are ignored (reading-status shelves such as "to-read").
    year_edges
        Left edges of publication-year buckets; years before the first edge share one bucket.
    """

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    max_tags: int = 2000
    max_authors: int = 50_000
    max_series: int = 50_000
    max_terms: int = 5000
    min_tag_books: int = 2
    tag_weighting: Literal["binary", "log1p"] = "binary"
    drop_shelves: tuple[str, ...] = tuple(sorted(GENERIC_SHELVES))
    year_edges: tuple[int, ...] = DEFAULT_YEAR_EDGES

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(GROUPS)
        if unknown:
            raise ConfigError(
                f"unknown feature groups {sorted(unknown)} in weights: use {', '.join(GROUPS)}"
            )
        negative = {key: value for key, value in self.weights.items() if value < 0}
        if negative:
            raise ConfigError(f"feature weights must be >= 0, got {negative}")
        self.weights = {**DEFAULT_WEIGHTS, **self.weights}
        if self.tag_weighting not in ("binary", "log1p"):
            raise ConfigError(
                f"tag_weighting={self.tag_weighting!r} is invalid: use 'binary' or 'log1p'"
            )
        self.drop_shelves = tuple(self.drop_shelves)
        self.year_edges = tuple(int(edge) for edge in self.year_edges)
        if list(self.year_edges) != sorted(set(self.year_edges)):
            raise ConfigError(f"year_edges must be strictly increasing, got {self.year_edges}")


class ItemFeaturizer:
    """Turn book metadata into sparse content vectors.

    Each group (shelves, authors, series, year bucket, language, title and description terms)
    is L2-normalised on its own and multiplied by its weight, then the whole row is
    L2-normalised. A book without any known metadata gets an all-zero row.

    Parameters
    ----------
    **params
        Fields of `FeaturizerParams`.
    """

    def __init__(self, **params: Any) -> None:
        self.params = FeaturizerParams(**params)
        self.vocabularies: dict[str, list[str]] = {}
        self.idf: dict[str, list[float]] = {}
        self.fitted = False

    # ---- fitting ---------------------------------------------------------------------------
    def fit(self, books: pl.DataFrame) -> ItemFeaturizer:
        """Learn vocabularies and inverse document frequencies from `books`.

        Pass only books of the training period, so the vocabulary contains nothing learnt
        after the cut.
        """
        books = _with_all_columns(books)
        p = self.params
        n_books = max(books.height, 1)

        tags = _explode(books, TAGS, drop=set(p.drop_shelves))
        self._fit_list_vocabulary("tags", tags, p.max_tags, p.min_tag_books, n_books)
        self._fit_list_vocabulary("authors", _explode(books, AUTHORS), p.max_authors, 1, n_books)
        self._fit_list_vocabulary("series", _explode(books, SERIES), p.max_series, 1, n_books)

        languages = books[LANGUAGE].drop_nulls().unique().sort().to_list()
        self.vocabularies["language"] = [str(value) for value in languages]

        texts = _texts(books)
        has_text = any(texts)
        if has_text and p.max_terms > 0:
            counter = _text_vectorizer(max_features=p.max_terms)
            counts = counter.fit_transform(texts)
            document_frequency = np.asarray((counts > 0).sum(axis=0)).ravel()
            self.vocabularies["text"] = counter.get_feature_names_out().tolist()
            self.idf["text"] = _idf(document_frequency, n_books).tolist()
        else:
            self.vocabularies["text"] = []
            self.idf["text"] = []

        self.fitted = True
        sizes = {group: len(values) for group, values in self.vocabularies.items()}
        logger.info("fitted item features on %d books: %s", books.height, sizes)
        return self

    def _fit_list_vocabulary(
        self, group: str, exploded: pl.DataFrame, cap: int, min_books: int, n_books: int
    ) -> None:
        frequency = (
            exploded.group_by("value")
            .agg(pl.col("row").n_unique().alias("books"))
            .filter(pl.col("books") >= min_books)
            .sort(["books", "value"], descending=[True, False])
            .head(cap)
            .sort("value")
        )
        self.vocabularies[group] = frequency["value"].to_list()
        self.idf[group] = _idf(frequency["books"].to_numpy(), n_books).tolist()

    # ---- transforming ----------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Number of columns that `transform` returns."""
        self._check_fitted()
        return sum(self._group_sizes().values())

    def feature_names(self) -> list[str]:
        """Names of the output columns, as `group:value`."""
        self._check_fitted()
        names: list[str] = []
        for group in GROUPS:
            names.extend(f"{group}:{value}" for value in self._group_values(group))
        return names

    def transform(self, books: pl.DataFrame) -> sp.csr_matrix:
        """Return the float32 CSR matrix (books.height, n_features) of content vectors.

        Works on books never seen at fit time; values outside the vocabulary are ignored.
        Rows are L2-normalised; rows of books without known metadata are all zero.
        """
        self._check_fitted()
        books = _with_all_columns(books)
        blocks = []
        for group in GROUPS:
            block = self._transform_group(group, books)
            weight = self.params.weights.get(group, 0.0)
            blocks.append(normalise_rows(block) * weight)
        matrix = sp.hstack(blocks, format="csr", dtype=np.float32)
        matrix = normalise_rows(matrix)
        empty = int((np.diff(matrix.indptr) == 0).sum())
        if empty:
            logger.debug("%d of %d books have no known content features", empty, books.height)
        return matrix

    def _transform_group(self, group: str, books: pl.DataFrame) -> sp.csr_matrix:
        n_rows = books.height
        vocabulary = self.vocabularies[group] if group != "year" else []
        if group == "year":
            return _year_buckets(books[YEAR], self.params.year_edges)
        if group == "language":
            return _one_hot(books[LANGUAGE].cast(pl.Utf8), vocabulary)
        if group == "text":
            if not vocabulary:
                return sp.csr_matrix((n_rows, 0), dtype=np.float32)
            counter = _text_vectorizer(vocabulary=vocabulary)
            counts = counter.transform(_texts(books)).astype(np.float32)
            counts.data = 1.0 + np.log(counts.data)
            return counts @ sp.diags(np.asarray(self.idf["text"], dtype=np.float32))

        column = {"tags": TAGS, "authors": AUTHORS, "series": SERIES}[group]
        drop = set(self.params.drop_shelves) if group == "tags" else set()
        exploded = _explode(books, column, drop=drop, with_counts=group == "tags")
        lookup = pl.DataFrame(
            {"value": vocabulary, "col": np.arange(len(vocabulary), dtype=np.int64)},
            schema={"value": pl.Utf8, "col": pl.Int64},
        )
        matched = exploded.join(lookup, on="value", how="inner").unique(["row", "col"])
        if group == "tags" and self.params.tag_weighting == "log1p":
            values = np.log1p(matched["count"].fill_null(1).clip(lower_bound=0).to_numpy())
        else:
            values = np.ones(matched.height)
        values = values * np.asarray(self.idf[group], dtype=np.float64)[matched["col"].to_numpy()]
        return sp.csr_matrix(
            (values.astype(np.float32), (matched["row"].to_numpy(), matched["col"].to_numpy())),
            shape=(n_rows, len(vocabulary)),
        )

    def _group_values(self, group: str) -> list[str]:
        if group == "year":
            edges = self.params.year_edges
            labels = [f"<{edges[0]}"] if edges else []
            labels += [f">={edge}" for edge in edges]
            return labels or ["any"]
        return self.vocabularies[group]

    def _group_sizes(self) -> dict[str, int]:
        return {group: len(self._group_values(group)) for group in GROUPS}

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted featurizer to `path/features.json` and return that file."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = asdict(self.params)
        params["drop_shelves"] = list(params["drop_shelves"])
        params["year_edges"] = list(params["year_edges"])
        state = {
            "format": FEATURES_FORMAT,
            "params": params,
            "vocabularies": self.vocabularies,
            "idf": self.idf,
        }
        target = path / FEATURES_FILE
        target.write_text(json.dumps(state))
        return target

    @classmethod
    def load(cls, path: str | Path) -> ItemFeaturizer:
        """Read a featurizer written by `save` from the directory `path`."""
        target = Path(path) / FEATURES_FILE
        try:
            state = json.loads(target.read_text())
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"cannot read item features from {target}: {error}. Re-run training."
            ) from None
        if state.get("format") != FEATURES_FORMAT:
            raise ModelLoadError(
                f"{target} has format {state.get('format')!r}, expected {FEATURES_FORMAT}"
            )
        featurizer = cls(**state["params"])
        featurizer.vocabularies = {key: list(value) for key, value in state["vocabularies"].items()}
        featurizer.idf = {key: list(value) for key, value in state["idf"].items()}
        featurizer.fitted = True
        return featurizer

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("ItemFeaturizer is not fitted: call fit() or load() first")


# ---- helpers --------------------------------------------------------------------------------
_LIST_COLUMNS = (AUTHORS, SERIES, TAGS)


def _with_all_columns(books: pl.DataFrame) -> pl.DataFrame:
    """Add missing metadata columns as nulls so that partial catalogues still transform."""
    missing = []
    columns = []
    for name in _LIST_COLUMNS:
        if name not in books.columns:
            missing.append(name)
            columns.append(pl.lit(None, dtype=pl.List(pl.Utf8)).alias(name))
    if TAG_COUNTS not in books.columns:
        columns.append(pl.lit(None, dtype=pl.List(pl.Int64)).alias(TAG_COUNTS))
    for name, dtype in ((TITLE, pl.Utf8), (DESCRIPTION, pl.Utf8), (LANGUAGE, pl.Utf8)):
        if name not in books.columns:
            missing.append(name)
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    if YEAR not in books.columns:
        missing.append(YEAR)
        columns.append(pl.lit(None, dtype=pl.Int32).alias(YEAR))
    if missing:
        logger.debug("book table has no %s columns; those features are empty", missing)
    return books.with_columns(columns) if columns else books


def _explode(
    books: pl.DataFrame, column: str, drop: set[str] | None = None, with_counts: bool = False
) -> pl.DataFrame:
    """Return one row per (book row, list value), values stripped and lower-cased for tags."""
    row = pl.int_range(pl.len(), dtype=pl.Int64).alias("row")
    values = pl.col(column).cast(pl.List(pl.Utf8))
    position = values.list.eval(pl.int_range(pl.len())).alias("position")
    frame = books.select(row, values.alias("value"), position).explode(["value", "position"])
    if with_counts:
        counts = pl.col(TAG_COUNTS).cast(pl.List(pl.Int64))
        aligned = books.select(row, counts.alias("count"), position).filter(
            pl.col("count").list.len() == pl.col("position").list.len()
        )
        frame = frame.join(
            aligned.explode(["count", "position"]), on=["row", "position"], how="left"
        )
    frame = frame.with_columns(pl.col("value").str.strip_chars()).filter(
        pl.col("value").is_not_null() & (pl.col("value") != "")
    )
    if column == TAGS:
        frame = frame.with_columns(pl.col("value").str.to_lowercase())
    if drop:
        frame = frame.filter(~pl.col("value").is_in(sorted(drop)))
    return frame


def _texts(books: pl.DataFrame) -> list[str]:
    text = pl.concat_str(
        [pl.col(TITLE).fill_null(""), pl.col(DESCRIPTION).fill_null("")], separator=" "
    )
    return books.select(text.str.strip_chars().alias("text"))["text"].to_list()


def _text_vectorizer(
    max_features: int | None = None, vocabulary: list[str] | None = None
) -> CountVectorizer:
    return CountVectorizer(
        stop_words="english",
        lowercase=True,
        token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
        max_features=max_features,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


def _idf(document_frequency: np.ndarray, n_documents: int) -> np.ndarray:
    """Smoothed inverse document frequency: log((1 + n) / (1 + df)) + 1."""
    frequency = np.asarray(document_frequency, dtype=np.float64)
    return np.log((1.0 + n_documents) / (1.0 + frequency)) + 1.0


def _one_hot(values: pl.Series, vocabulary: list[str]) -> sp.csr_matrix:
    columns = pd.Index(vocabulary, dtype=object).get_indexer(values.to_numpy().astype(object))
    rows = np.flatnonzero(columns >= 0)
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns[rows])),
        shape=(len(values), len(vocabulary)),
    )


def _year_buckets(years: pl.Series, edges: tuple[int, ...]) -> sp.csr_matrix:
    n_buckets = len(edges) + 1 if edges else 1
    values = years.cast(pl.Float64).to_numpy()
    known = np.isfinite(values)
    rows = np.flatnonzero(known)
    columns = np.searchsorted(np.asarray(edges, dtype=np.float64), values[known], side="right")
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(values), n_buckets)
    )


def normalise_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Return `matrix` as float32 CSR with unit L2 rows; all-zero rows stay zero."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)


# ---- shared by the content-based models -----------------------------------------------------
def fit_item_features(
    data: TrainData, **params: Any
) -> tuple[ItemFeaturizer | None, sp.csr_matrix | None]:
    """Fit a featurizer on the training-period books of `data` and featurize every item.

    Training-period books are the items with at least one train interaction, so the
    vocabulary contains nothing that only books of the test period carry. Returns
    (None, None) when `data.books` is None.
    """
    if data.books is None:
        logger.warning("no book metadata: content features are missing, cold items unscorable")
        return None, None
    in_train = np.asarray(data.user_items.getnnz(axis=0) > 0)
    featurizer = ItemFeaturizer(**params).fit(data.books.filter(pl.Series(in_train)))
    content = featurizer.transform(data.books)
    missing = int((np.diff(content.indptr) == 0).sum())
    if missing:
        logger.info(
            "%d of %d items have no content features (%d of them cold)",
            missing,
            data.n_items,
            int((data.cold & (np.diff(content.indptr) == 0)).sum()),
        )
    return featurizer, content


def csr_to_arrays(prefix: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Flatten a CSR matrix into named arrays for `numpy.savez`."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, arrays: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """Rebuild a CSR matrix written by `csr_to_arrays`."""
    shape = tuple(int(value) for value in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=shape,
    )
