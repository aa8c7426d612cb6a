"""MovieLens conversion into the custom format, on a hand-written copy and the real files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bookrecs.data.custom import read_custom
from tests.helpers.movielens import (
    MOVIELENS_PROTOCOL,
    movielens_split,
    read_movielens_items,
    write_movielens_catalogue,
)


@pytest.fixture()
def tiny_movielens(tmp_path: Path) -> Path:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,10,4.5,1000000000\n"
        "1,20,0.5,1000000100\n"
        "2,10,3.0,1100000000\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        '10,"Toy Story (1995)",Adventure|Animation\n'
        '20,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Drama\n'
        "30,Untitled Movie,(no genres listed)\n"
        "40,Stranger Things (2016-),Drama\n"
    )
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n1,10,Pixar,5\n2,10,pixar,6\n2,10,Adventure,7\n1,20,dark ,3\n"
    )
    return folder


def test_interactions_columns(tiny_movielens, tmp_path):
    dest = write_movielens_catalogue(tiny_movielens, tmp_path / "out")
    interactions = pl.read_csv(dest / "interactions.csv")
    assert interactions.columns == ["user_id", "item_id", "timestamp", "rating", "is_read"]
    assert interactions["timestamp"].to_list() == [1000000000, 1000000100, 1100000000]
    assert interactions["rating"].to_list() == [4.5, 0.5, 3.0]
    assert interactions["is_read"].all()


def test_items_title_year_tags(tiny_movielens, tmp_path):
    dest = write_movielens_catalogue(tiny_movielens, tmp_path / "out")
    items = pl.read_csv(dest / "items.csv", schema_overrides={"item_id": pl.Utf8})
    rows = {row["item_id"]: row for row in items.iter_rows(named=True)}
    assert rows["10"]["title"] == "Toy Story"
    assert rows["10"]["year"] == 1995
    assert rows["10"]["tags"] == "Adventure|Animation|pixar"
    assert rows["20"]["title"] == "City of Lost Children, The (Cité des enfants perdus, La)"
    assert rows["20"]["tags"] == "Drama|dark"
    assert rows["30"]["year"] is None
    assert rows["30"]["tags"] is None
    assert rows["40"]["year"] == 2016
    assert items["language"].unique().to_list() == ["en"]


def test_custom_reader_accepts_output(tiny_movielens, tmp_path):
    dataset = read_custom(write_movielens_catalogue(tiny_movielens, tmp_path / "out"), False)
    assert dataset.interactions.height == 3
    assert dataset.books is not None
    toy_story = dataset.books.filter(pl.col("item_id") == "10")
    assert toy_story["tags"].to_list() == [["Adventure", "Animation", "pixar"]]


def test_missing_ratings_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="ratings.csv"):
        write_movielens_catalogue(tmp_path, tmp_path / "out")


def test_items_without_tags_file(tiny_movielens):
    (tiny_movielens / "tags.csv").unlink()
    items = read_movielens_items(tiny_movielens)
    assert items.filter(pl.col("item_id") == "10")["tags"].to_list() == [["Adventure", "Animation"]]


def test_real_files_convert(movielens_dir, tmp_path):
    dest = write_movielens_catalogue(movielens_dir, tmp_path / "out")
    assert pl.read_csv(dest / "interactions.csv").height == 100_004
    assert pl.read_csv(dest / "items.csv").height == 9_125


def test_real_split_has_cold_test_items(movielens_dir, tmp_path):
    split = movielens_split(movielens_dir, tmp_path / "out", MOVIELENS_PROTOCOL)
    assert split.report.cold_items > 0
    assert split.report.cold_test_pair_share > 0.2
    assert split.report.test_users > 10
