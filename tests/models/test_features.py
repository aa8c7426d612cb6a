"""ItemFeaturizer: vocabularies from training-period books, unseen books, leakage rules."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from bookrecs.data.dataset import BOOK_SCHEMA
from bookrecs.exceptions import ConfigError, ModelLoadError, NotFittedError
from bookrecs.features import ItemFeaturizer, fit_item_features
from tests.models.test_hybrid import two_genre_data


def books(rows: list[dict]) -> pl.DataFrame:
    defaults = {
        "title": None,
        "description": None,
        "authors": None,
        "series": None,
        "tags": None,
        "tag_counts": None,
        "year": None,
        "language": None,
    }
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=BOOK_SCHEMA)


@pytest.fixture()
def catalogue() -> pl.DataFrame:
    return books(
        [
            {
                "item_id": "hp1",
                "title": "Harry Potter and the Stone",
                "description": "a wizard school",
                "authors": ["J.K. Rowling"],
                "series": ["Harry Potter"],
                "tags": ["fantasy", "to-read", "magic"],
                "tag_counts": [100, 5000, 40],
                "year": 1997,
                "language": "eng",
            },
            {
                "item_id": "hp2",
                "title": "Harry Potter and the Chamber",
                "description": "the wizard returns",
                "authors": ["J.K. Rowling"],
                "series": ["Harry Potter"],
                "tags": ["fantasy", "magic"],
                "tag_counts": [90, 30],
                "year": 1998,
                "language": "eng",
            },
            {
                "item_id": "tfios",
                "title": "The Fault in Our Stars",
                "description": "love and cancer",
                "authors": ["John Green"],
                "tags": ["romance", "contemporary"],
                "tag_counts": [300, 200],
                "year": 2012,
                "language": "eng",
            },
            {"item_id": "blank"},
        ]
    )


def dense(matrix: sp.csr_matrix) -> np.ndarray:
    return matrix.toarray()


def test_rows_are_unit_or_zero(catalogue):
    matrix = ItemFeaturizer(min_tag_books=1).fit(catalogue).transform(catalogue)
    norms = np.linalg.norm(dense(matrix), axis=1)
    assert matrix.dtype == np.float32
    assert np.allclose(norms[:3], 1.0)
    assert norms[3] == 0.0


def test_series_books_are_closest(catalogue):
    matrix = dense(ItemFeaturizer(min_tag_books=1).fit(catalogue).transform(catalogue))
    similarity = matrix @ matrix.T
    assert similarity[0, 1] > 0.8
    assert similarity[0, 2] < similarity[0, 1]


def test_shelf_counts_ignored_by_default(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1).fit(catalogue)
    recounted = catalogue.with_columns(
        pl.Series("tag_counts", [[1, 1, 1], [5, 99999], [7, 1], None], dtype=pl.List(pl.Int64))
    )
    assert np.array_equal(
        dense(featurizer.transform(catalogue)), dense(featurizer.transform(recounted))
    )


def test_log1p_weighting_uses_counts(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1, tag_weighting="log1p").fit(catalogue)
    recounted = catalogue.with_columns(
        pl.Series("tag_counts", [[1, 1, 1], [5, 99999], [7, 1], None], dtype=pl.List(pl.Int64))
    )
    assert not np.array_equal(
        dense(featurizer.transform(catalogue)), dense(featurizer.transform(recounted))
    )


def test_generic_shelves_dropped(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1).fit(catalogue)
    assert "to-read" not in featurizer.vocabularies["tags"]
    assert featurizer.vocabularies["tags"] == ["contemporary", "fantasy", "magic", "romance"]


def test_min_tag_books_caps_vocabulary(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=2).fit(catalogue)
    assert featurizer.vocabularies["tags"] == ["fantasy", "magic"]


def test_max_tags_keeps_most_frequent(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1, max_tags=1).fit(catalogue)
    assert featurizer.vocabularies["tags"] == ["fantasy"]


def test_unseen_book_uses_known_values(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1).fit(catalogue)
    new = books(
        [
            {"item_id": "hp3", "authors": ["J.K. Rowling"], "tags": ["unknown-shelf"]},
            {"item_id": "other", "authors": ["Nobody"], "tags": ["unknown-shelf"]},
        ]
    )
    matrix = featurizer.transform(new)
    names = featurizer.feature_names()
    first = {names[column] for column in matrix[0].indices}
    assert first == {"authors:J.K. Rowling"}
    assert matrix[1].nnz == 0


def test_group_weight_zero_disables(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1, weights={"authors": 0.0}).fit(catalogue)
    matrix = featurizer.transform(catalogue)
    names = featurizer.feature_names()
    used = {names[column] for column in matrix.indices}
    assert not any(name.startswith("authors:") for name in used)


def test_year_bucket_feature(catalogue):
    featurizer = ItemFeaturizer(year_edges=(1990, 2010), weights={"year": 1.0}).fit(catalogue)
    names = featurizer.feature_names()
    matrix = featurizer.transform(catalogue)
    first = {names[column] for column in matrix[0].indices if names[column].startswith("year")}
    third = {names[column] for column in matrix[2].indices if names[column].startswith("year")}
    assert first == {"year:>=1990"}
    assert third == {"year:>=2010"}


def test_missing_columns_give_zero_rows(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1).fit(catalogue)
    matrix = featurizer.transform(pl.DataFrame({"item_id": ["x", "y"]}))
    assert matrix.shape == (2, featurizer.n_features)
    assert matrix.nnz == 0


def test_mismatched_counts_ignored(catalogue):
    featurizer = ItemFeaturizer(min_tag_books=1, tag_weighting="log1p").fit(catalogue)
    broken = catalogue.with_columns(
        pl.Series("tag_counts", [[1], None, [1, 2, 3], None], dtype=pl.List(pl.Int64))
    )
    matrix = featurizer.transform(broken)
    assert np.allclose(np.linalg.norm(dense(matrix)[:3], axis=1), 1.0)


def test_save_load_round_trip(catalogue, tmp_path):
    featurizer = ItemFeaturizer(min_tag_books=1, weights={"text": 0.7}).fit(catalogue)
    featurizer.save(tmp_path)
    loaded = ItemFeaturizer.load(tmp_path)
    assert loaded.feature_names() == featurizer.feature_names()
    assert np.array_equal(
        dense(loaded.transform(catalogue)), dense(featurizer.transform(catalogue))
    )


def test_load_missing_file_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="features.json"):
        ItemFeaturizer.load(tmp_path)


def test_transform_before_fit_raises(catalogue):
    with pytest.raises(NotFittedError):
        ItemFeaturizer().transform(catalogue)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"weights": {"genre": 1.0}}, "unknown feature groups"),
        ({"weights": {"tags": -1.0}}, "must be >= 0"),
        ({"tag_weighting": "sqrt"}, "tag_weighting"),
        ({"year_edges": (2000, 1990)}, "strictly increasing"),
    ],
)
def test_invalid_params_rejected(params, message):
    with pytest.raises(ConfigError, match=message):
        ItemFeaturizer(**params)


def test_vocabulary_from_train_books_only():
    data = two_genre_data()
    cold_index = int(np.flatnonzero(data.cold)[0])
    only_cold = data.books.with_columns(
        pl.when(pl.int_range(pl.len()) == cold_index)
        .then(pl.lit(["cold-only-shelf", "cold-only-shelf-2"]))
        .otherwise(pl.col("tags"))
        .alias("tags")
    )
    data.books = only_cold
    featurizer, content = fit_item_features(data, min_tag_books=1)
    assert "cold-only-shelf" not in featurizer.vocabularies["tags"]
    assert content.shape[0] == data.n_items


def test_no_books_gives_none():
    featurizer, content = fit_item_features(two_genre_data(with_books=False))
    assert featurizer is None
    assert content is None
