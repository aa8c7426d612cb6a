"""Convert MovieLens latest-small into the `custom` catalogue format for tests.

MovieLens has real item metadata (genres, user tags, release years), which makes it a check of
the content-based cold-start path on real rather than generated data.

Output files
------------
interactions.csv
    user_id, item_id, timestamp (Unix seconds), rating (0.5 to 5 stars), is_read (True).
items.csv
    item_id, title (year removed), tags (genres then user tags, joined with "|"), year,
    language ("en").
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from bookrecs.columns import (
    AUTHORS,
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
from bookrecs.config import ProtocolConfig
from bookrecs.data.custom import read_custom
from bookrecs.data.dataset import BOOK_SCHEMA
from bookrecs.data.prepare import prepare
from bookrecs.split import Split, make_split

TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:-\d{0,4})?\)\s*$")
NO_GENRES = "(no genres listed)"


def write_movielens_catalogue(ml_dir: Path, dest: Path) -> Path:
    """Write interactions.csv and items.csv for the MovieLens files in `ml_dir` into `dest`.

    Returns `dest`. Raises FileNotFoundError naming the missing file when `ml_dir` lacks
    ratings.csv or movies.csv; tags.csv is optional.
    """
    ml_dir, dest = Path(ml_dir), Path(dest)
    for name in ("ratings.csv", "movies.csv"):
        if not (ml_dir / name).is_file():
            raise FileNotFoundError(f"{ml_dir / name} not found: pass the ml-latest-small folder")
    dest.mkdir(parents=True, exist_ok=True)

    ratings = pl.read_csv(ml_dir / "ratings.csv")
    interactions = ratings.select(
        pl.col("userId").cast(pl.Utf8).alias(USER_ID),
        pl.col("movieId").cast(pl.Utf8).alias(ITEM_ID),
        pl.col("timestamp").cast(pl.Int64),
        pl.col("rating").cast(pl.Float32).alias(RATING),
        pl.lit(True).alias(IS_READ),
    )
    interactions.write_csv(dest / "interactions.csv")

    items = read_movielens_items(ml_dir)
    items.select(
        ITEM_ID,
        TITLE,
        pl.when(pl.col(TAGS).list.len() > 0).then(pl.col(TAGS).list.join("|")).alias(TAGS),
        YEAR,
        LANGUAGE,
    ).write_csv(dest / "items.csv")
    return dest


def read_movielens_items(ml_dir: Path) -> pl.DataFrame:
    """Return the MovieLens movies as a books table (`BOOK_SCHEMA`).

    Tags are the genres followed by the distinct user tags (lower-cased) in first-use order;
    a user tag that repeats a genre is left out.
    """
    movies = pl.read_csv(Path(ml_dir) / "movies.csv")
    parsed = [_split_title(title) for title in movies["title"].to_list()]
    genres = [
        [] if value == NO_GENRES else value.split("|") for value in movies["genres"].to_list()
    ]
    user_tags: dict[str, list[str]] = {}
    tags_path = Path(ml_dir) / "tags.csv"
    if tags_path.is_file():
        tags = pl.read_csv(tags_path).sort("timestamp")
        for movie, tag in tags.select(pl.col("movieId").cast(pl.Utf8), "tag").iter_rows():
            value = str(tag).strip().lower()
            known = user_tags.setdefault(movie, [])
            if value and value not in known:
                known.append(value)

    movie_ids = movies["movieId"].cast(pl.Utf8).to_list()
    all_tags = [
        genre_list
        + [tag for tag in user_tags.get(movie, []) if tag not in {g.lower() for g in genre_list}]
        for movie, genre_list in zip(movie_ids, genres, strict=True)
    ]
    return pl.DataFrame(
        {
            ITEM_ID: movie_ids,
            TITLE: [title for title, _ in parsed],
            DESCRIPTION: [None] * movies.height,
            AUTHORS: [None] * movies.height,
            SERIES: [None] * movies.height,
            TAGS: all_tags,
            TAG_COUNTS: [None] * movies.height,
            YEAR: [year for _, year in parsed],
            LANGUAGE: ["en"] * movies.height,
        },
        schema=BOOK_SCHEMA,
    )


# Protocol for MovieLens: no edition merging (remakes share titles), all history kept.
MOVIELENS_PROTOCOL = ProtocolConfig(
    merge_editions=False, recent_share=1.0, test_quantile=0.8, cold_threshold=1
)


def movielens_split(
    ml_dir: Path, dest: Path, protocol: ProtocolConfig = MOVIELENS_PROTOCOL
) -> Split:
    """Convert MovieLens into `dest`, then read, prepare and split it like any custom dataset."""
    folder = write_movielens_catalogue(ml_dir, dest)
    dataset = read_custom(folder, show_progress=False)
    return make_split(prepare(dataset, protocol, show_progress=False), protocol)


def _split_title(raw: str) -> tuple[str, int | None]:
    match = TITLE_YEAR.match(raw.strip())
    if match is None:
        return raw.strip(), None
    return match.group("title"), int(match.group("year"))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Convert ml-latest-small to the custom format.")
    parser.add_argument("ml_dir", type=Path, help="folder with ratings.csv and movies.csv")
    parser.add_argument("dest", type=Path, help="output folder for interactions.csv and items.csv")
    arguments = parser.parse_args()
    print(write_movielens_catalogue(arguments.ml_dir, arguments.dest))
