"""Synthetic Goodreads Young Adult data in the format of the official UCSD Book Graph files.

`write_demo` writes `goodreads_interactions_young_adult.json.gz`,
`goodreads_books_young_adult.json.gz`, `goodreads_book_authors.json.gz` and
`goodreads_book_series.json.gz` with the field names, value types and date format of the real
files, so the demo goes through the same reader and preparation as the real data.

How the data is generated
-------------------------
- Works have a main genre and often a second one, an author, sometimes a series, a release
  date and a power-law popularity. 10% of book_ids are extra editions of another work, with
  titles that differ only in case, punctuation or spacing. 6.5% of works have a language code
  other than English ("spa", "ger" or empty).
- Users have a taste vector over genres (Dirichlet) and two favourite authors in their top
  genre. Each interaction is dated on a six-year timeline with exponential growth. It then
  picks a work through one of four channels (`CHANNEL_SHARES`):

  - genre: a genre drawn from the user's taste, then a work of that genre by popularity,
  - author: a work of one of the user's favourite authors,
  - new: a work of a taste genre released in the last 120 days,
  - popular: any work by popularity.

  Only works released by the interaction's date can be picked.
- Readers of a series volume often read the next one. Ratings grow with taste affinity.

Because the genre and author of a work drive who reads it, shelves, authors, series and
description words predict reads of books that first appear after the train/test cut (cold
books), while popularity still matters.

The same `(config, seed)` gives byte-identical files: gzip headers carry no name or time, and
every random draw comes from generators seeded by `seed` and the chunk index.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
import os
import random
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from tqdm.auto import tqdm

from bookrecs.config import DemoConfig

logger = logging.getLogger("bookrecs.data")

INTERACTIONS_FILE = "goodreads_interactions_young_adult.json.gz"
BOOKS_FILE = "goodreads_books_young_adult.json.gz"
AUTHORS_FILE = "goodreads_book_authors.json.gz"
SERIES_FILE = "goodreads_book_series.json.gz"
PARAMS_FILE = "demo_params.json"
README_FILE = "README.txt"
DEMO_FILES = (INTERACTIONS_FILE, BOOKS_FILE, AUTHORS_FILE, SERIES_FILE, README_FILE)

# Bump when the generator's output changes for the same (config, seed), so old folders are
# regenerated instead of reused.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class DemoSize:
    """Raw sizes of one demo preset: users and book_ids in the files, mean books per user."""

    n_users: int
    n_books: int
    mean_items: float


# "full" is sized so that preparation leaves about 350k users, 34k items and 15M interactions,
# like the real prepared data. With seed 42 it wrote 25.9M raw rows in 107 s with 1.3 GB peak
# RSS, and preparation left 14.9M interactions of 367k users on 34.0k items (measured with
# /usr/bin/time on a shared 2-core VM).
DEMO_SIZES: dict[str, DemoSize] = {
    "small": DemoSize(n_users=3_000, n_books=2_500, mean_items=98.0),
    "full": DemoSize(n_users=420_000, n_books=40_500, mean_items=106.0),
}

START = datetime(2011, 11, 1, tzinfo=UTC)
TIMELINE_DAYS = 2_192.0  # six years, to 2017-11-01
GROWTH_PER_DAY = 0.45 / 365.0  # interactions per day grow by e^0.45 (about 57%) a year
NEW_RELEASE_WINDOW_DAYS = 120.0
ACTIVE_DAYS_MEAN = 900.0  # mean length of a user's active period, after a 30-day minimum
BACKLIST_SHARE = 0.65  # works released before the timeline starts
EDITION_SHARE = 0.10  # extra book_ids as a share of all book_ids
CHANNEL_SHARES = {"genre": 0.65, "author": 0.14, "new": 0.11, "popular": 0.10}
SERIES_NEXT_PROB = 0.45
EDITION_PICK_PROB = 0.25  # a read of a work with editions lands on one of them
SECOND_EDITION_PROB = 0.1  # a reader of a work with editions also shelves another edition
USERS_PER_CHUNK = 10_000
LOS_ANGELES = "America/Los_Angeles"
GOODREADS_DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"

LANGUAGES = ("eng", "en-US", "en-GB", "spa", "ger", "")
LANGUAGE_SHARES = (0.905, 0.02, 0.01, 0.025, 0.015, 0.025)

# One paragraph a genre: `shelf: related shelves`, then indented title and description words.
_GENRE_TEXT = """
fantasy: magic high-fantasy dragons
    dragon kingdom sword prophecy sorcerer throne realm spell quest crown elven enchanted
    runes citadel
romance: love contemporary-romance swoon
    heart kiss summer crush promise forever wedding letters boyfriend prom sweetheart dance
    secret date
mystery: thriller suspense crime
    murder detective clue alibi missing secrets lies witness case suspect vanished evidence
    shadow cipher
science-fiction: sci-fi space aliens
    starship galaxy android planet orbit colony signal quantum robot station nebula clone warp
    cyborg
dystopia: dystopian post-apocalyptic survival
    rebellion regime district uprising wasteland curfew resistance sector purge divide ashes
    wall ration revolt
paranormal: vampires werewolves angels
    vampire werewolf ghost angel demon haunted curse blood moon immortal witch fallen spirit
    fangs
contemporary: realistic-fiction coming-of-age high-school
    school friends family town summer road music team senior diary notebook band guitar
    neighbor
historical-fiction: historical history war
    war empire queen revolution duchess century court soldier ship victorian plague manor
    pilgrim frontier
horror: scary creepy zombies
    nightmare zombie asylum dead scream grave dark hollow bones whisper fog cellar midnight
    doll
humor: funny comedy humour
    disaster prank awkward chaos joke mess trouble oops silly underpants catastrophe hilarious
    goofy blunder
adventure: action pirates treasure
    island treasure pirate map jungle voyage escape expedition mountain river compass storm
    raft cave
lgbt: queer lgbtq glbt
    pride rainbow identity coming true self brave label mirror colors honest spectrum together
    voice
"""


def _parse_genres(text: str) -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    genres: list[tuple[str, tuple[str, ...], list[str]]] = []
    for line in text.strip().splitlines():
        if line.startswith(" "):
            genres[-1][2].extend(line.split())
        else:
            name, related = line.split(":")
            genres.append((name, tuple(related.split()), []))
    return tuple((name, related, tuple(words)) for name, related, words in genres)


# Shelf name, related shelf names and words used in titles and descriptions, per genre.
GENRES = _parse_genres(_GENRE_TEXT)
GENRE_PRIOR = np.array([0.18, 0.14, 0.09, 0.07, 0.09, 0.10, 0.12, 0.06, 0.04, 0.03, 0.05, 0.03])

COMMON_WORDS = tuple(
    (
        "the a of and to in her his she he their world life must when everything never one finds "
        "discovers only before after new first last girl boy years day night truth way home"
    ).split()
)
SYLLABLES = tuple(
    "ka la mir an dor el vy ra thos qu en bri sa tor li na mo ren cas zel or phi da wyn ta len is "
    "gar ves ul".split()
)
GENERIC_SHELF_SHARES = {
    "to-read": 1.0,
    "young-adult": 0.35,
    "ya": 0.2,
    "currently-reading": 0.06,
    "favorites": 0.05,
}


def write_demo(dest: Path, config: DemoConfig, seed: int, show_progress: bool = True) -> Path:
    """Write the synthetic demo dataset into `dest` and return `dest`.

    Parameters
    ----------
    dest
        Folder to write into; created when missing. Files from an earlier call with the same
        `config` and `seed` are reused (checked through `demo_params.json`).
    config
        Size preset (`small` or `full`) and optional `n_users` / `n_books` overrides.
        `n_users` is the number of users in the interactions file and `n_books` the number of
        book_ids (editions included) in the books file.
    seed
        Seed of every random draw; the same seed gives byte-identical files.
    show_progress
        Show a tqdm bar over user chunks.

    Returns
    -------
    Path
        `dest`, holding the four `.json.gz` files, `README.txt` and `demo_params.json`.
    """
    dest = Path(dest)
    params = _params(config, seed)
    if _is_current(dest, params):
        logger.info("demo data in %s is current for seed %d; not regenerating", dest, seed)
        return dest

    dest.mkdir(parents=True, exist_ok=True)
    (dest / PARAMS_FILE).unlink(missing_ok=True)
    size = DEMO_SIZES[config.size]
    n_users = config.n_users or size.n_users
    n_books = config.n_books or size.n_books
    logger.info(
        "writing demo data to %s: %d users, %d books, seed %d", dest, n_users, n_books, seed
    )

    root = np.random.SeedSequence(seed)
    catalog_seq, users_seq = root.spawn(2)
    catalog = _build_catalog(n_books, np.random.default_rng(catalog_seq))
    _write_books(dest, catalog, np.random.default_rng(catalog_seq.spawn(1)[0]))
    rows = _write_interactions(dest, catalog, n_users, size.mean_items, users_seq, show_progress)
    (dest / README_FILE).write_text(_readme(n_users, n_books, rows, seed))
    (dest / PARAMS_FILE).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    logger.info("wrote %d interactions on %d books to %s", rows, n_books, dest)
    return dest


def _params(config: DemoConfig, seed: int) -> dict[str, Any]:
    # The preset's sizes are stored too, so retuning a preset regenerates its folders.
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "config": config.model_dump(mode="json"),
        "preset": asdict(DEMO_SIZES[config.size]),
    }


def _is_current(dest: Path, params: dict[str, Any]) -> bool:
    path = dest / PARAMS_FILE
    if not path.is_file() or not all((dest / name).is_file() for name in DEMO_FILES):
        return False
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable %s (%s); regenerating the demo data", path, error)
        return False
    return stored == params


# ---------------------------------------------------------------------------------------------
# Catalogue: works, authors, series, editions


@dataclass
class _Catalog:
    """Works (index w), their book_ids (index b, main editions first) and authors."""

    genre1: np.ndarray
    genre2: np.ndarray  # -1 when the work has one genre
    author: np.ndarray
    series: np.ndarray  # -1 outside a series
    series_pos: np.ndarray  # 1-based volume number
    next_in_series: np.ndarray  # next volume's work index or -1
    release: np.ndarray  # days since START, negative for the backlist
    popularity: np.ndarray
    language: np.ndarray  # index into LANGUAGES
    work_ids: np.ndarray
    book_ids: np.ndarray  # one per book index
    book_work: np.ndarray  # work of each book index
    edition_start: np.ndarray  # first extra edition's book index per work
    edition_count: np.ndarray
    author_genre: np.ndarray
    author_ids: np.ndarray
    series_ids: np.ndarray
    series_author: np.ndarray

    @property
    def n_works(self) -> int:
        return len(self.genre1)


def _build_catalog(n_books: int, rng: np.random.Generator) -> _Catalog:
    n_genres = len(GENRES)
    n_works = max(2, round(n_books * (1.0 - EDITION_SHARE)))
    n_editions = n_books - n_works
    n_authors = max(2, n_works // 3)

    author_genre = rng.choice(n_genres, size=n_authors, p=GENRE_PRIOR)
    productivity = _power_law(n_authors, 0.8, rng)
    author = rng.choice(n_authors, size=n_works, p=productivity / productivity.sum())
    genre1 = np.where(
        rng.random(n_works) < 0.85, author_genre[author], rng.choice(n_genres, n_works)
    )
    genre2 = rng.choice(n_genres, n_works)
    genre2 = np.where((rng.random(n_works) < 0.6) & (genre2 != genre1), genre2, -1)

    backlist = rng.random(n_works) < BACKLIST_SHARE
    backlist[0] = True  # so that some work is available on every day of the timeline
    release = np.where(
        backlist, -rng.uniform(1.0, 6_000.0, n_works), rng.uniform(0.0, TIMELINE_DAYS, n_works)
    )
    language = rng.choice(len(LANGUAGES), size=n_works, p=LANGUAGE_SHARES)
    popularity = _power_law(n_works, 0.95, rng)
    popularity = np.where(language >= 3, popularity * 0.3, popularity)

    series, series_pos, next_in_series, series_author = _build_series(author, release, rng)

    edition_of = np.sort(rng.choice(n_works, size=n_editions, replace=True))
    edition_count = np.bincount(edition_of, minlength=n_works)
    edition_start = n_works + np.concatenate(([0], np.cumsum(edition_count)[:-1]))
    book_work = np.concatenate((np.arange(n_works), edition_of))

    return _Catalog(
        genre1=genre1,
        genre2=genre2,
        author=author,
        series=series,
        series_pos=series_pos,
        next_in_series=next_in_series,
        release=release,
        popularity=popularity,
        language=language,
        work_ids=_sparse_ids(n_works, 100_000, rng),
        book_ids=_sparse_ids(n_books, 1_000, rng),
        book_work=book_work,
        edition_start=edition_start,
        edition_count=edition_count,
        author_genre=author_genre,
        author_ids=_sparse_ids(n_authors, 500, rng),
        series_ids=_sparse_ids(len(series_author), 10_000, rng),
        series_author=series_author,
    )


def _power_law(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Weights rank**-exponent over a random order of `n` ranks."""
    return (rng.permutation(n) + 1.0) ** -exponent


def _sparse_ids(n: int, mean_gap: int, rng: np.random.Generator) -> np.ndarray:
    """`n` distinct positive integer ids in shuffled order, like Goodreads' sparse numbering."""
    ids = 1_000 + np.cumsum(rng.integers(1, 2 * mean_gap, size=n))
    return rng.permutation(ids)


def _build_series(
    author: np.ndarray, release: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group runs of 2 to 5 consecutive works of one author into series, in release order."""
    n_works = len(author)
    series = np.full(n_works, -1, dtype=np.int64)
    series_pos = np.zeros(n_works, dtype=np.int64)
    next_in_series = np.full(n_works, -1, dtype=np.int64)
    series_author: list[int] = []

    order = np.lexsort((release, author))
    boundaries = np.flatnonzero(np.diff(author[order])) + 1
    for works in np.split(order, boundaries):
        position = 0
        while position < len(works) - 1:
            length = int(rng.integers(2, 6))
            if rng.random() < 0.5:
                position += 1
                continue
            volumes = works[position : position + length]
            if len(volumes) < 2:
                break
            series[volumes] = len(series_author)
            series_pos[volumes] = np.arange(1, len(volumes) + 1)
            next_in_series[volumes[:-1]] = volumes[1:]
            series_author.append(int(author[volumes[0]]))
            position += len(volumes)
    return series, series_pos, next_in_series, np.array(series_author, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Book, author and series files


def _write_books(dest: Path, catalog: _Catalog, rng: np.random.Generator) -> None:
    # Per-record text draws use the standard library generator because it is much faster than
    # numpy's for single values. It is seeded from `rng`, so the files stay reproducible.
    text_rng = random.Random(int(rng.integers(2**62)))
    names = _NameMaker(text_rng)
    author_names = [names.person() for _ in range(len(catalog.author_ids))]
    series_titles = [
        names.series(GENRES[catalog.author_genre[a]][2]) for a in catalog.series_author
    ]
    titles = [names.title(GENRES[g][2]) for g in catalog.genre1]

    work = catalog.book_work
    is_edition = np.arange(len(work)) >= catalog.n_works
    descriptions = _descriptions(catalog.genre1[work], catalog.genre2[work], is_edition, rng)
    records = []
    for b, w in enumerate(work.tolist()):
        edition = bool(is_edition[b])
        title = _edition_title(titles[w], text_rng) if edition else titles[w]
        record = _book_record(catalog, w, b, title, series_titles, text_rng, edition)
        record["description"] = descriptions[b]
        records.append(record)
    _write_json_lines(dest / BOOKS_FILE, records)

    works_per_author = np.bincount(catalog.author, minlength=len(catalog.author_ids))
    _write_json_lines(
        dest / AUTHORS_FILE,
        [
            {
                "average_rating": f"{text_rng.uniform(3.2, 4.5):.2f}",
                "author_id": str(catalog.author_ids[a]),
                "text_reviews_count": str(int(works_per_author[a] * text_rng.randrange(1, 200))),
                "name": author_names[a],
                "ratings_count": str(int(works_per_author[a] * text_rng.randrange(5, 3_000))),
            }
            for a in range(len(catalog.author_ids))
        ],
    )

    volumes = np.bincount(catalog.series[catalog.series >= 0], minlength=len(series_titles))
    _write_json_lines(
        dest / SERIES_FILE,
        [
            {
                "numbered": "true",
                "note": "",
                "description": "",
                "title": series_titles[s],
                "series_works_count": str(int(volumes[s])),
                "series_id": str(catalog.series_ids[s]),
                "primary_work_count": str(int(volumes[s])),
            }
            for s in range(len(series_titles))
        ],
    )


def _book_record(
    catalog: _Catalog,
    w: int,
    b: int,
    title: str,
    series_titles: list[str],
    rng: random.Random,
    edition: bool = False,
) -> dict[str, Any]:
    genre1, genre2 = int(catalog.genre1[w]), int(catalog.genre2[w])
    series = int(catalog.series[w])
    full_title = title
    series_ids: list[str] = []
    if series >= 0:
        full_title = f"{title} ({series_titles[series]}, #{catalog.series_pos[w]})"
        series_ids = [str(catalog.series_ids[series])]

    released = START + timedelta(days=float(catalog.release[w]))
    authors = [{"author_id": str(catalog.author_ids[catalog.author[w]]), "role": ""}]
    language = LANGUAGES[catalog.language[w]]
    if edition:
        shift = rng.uniform(-400, 400)
        released += timedelta(days=float(min(shift, TIMELINE_DAYS - catalog.release[w])))
        if rng.random() < 0.3:
            authors.append(
                {
                    "author_id": str(catalog.author_ids[rng.randrange(len(catalog.author_ids))]),
                    "role": "Narrator",
                }
            )
        if language in ("eng", "en-US") and rng.random() < 0.3:
            language = "en-US" if language == "eng" else "eng"

    scale = 20_000.0 * catalog.popularity[w] * (0.3 if edition else 1.0)
    return {
        "isbn": "",
        "text_reviews_count": str(int(scale * rng.uniform(0.01, 0.05))),
        "series": series_ids,
        "country_code": "US",
        "language_code": language,
        "popular_shelves": _shelves(genre1, genre2, scale, rng),
        "asin": "",
        "is_ebook": "true" if rng.random() < 0.2 else "false",
        "average_rating": f"{rng.uniform(3.0, 4.6):.2f}",
        "kindle_asin": "",
        "similar_books": [],
        "description": "",
        "format": rng.choice(["Paperback", "Hardcover", "Kindle Edition", "ebook"]),
        "link": "",
        "authors": authors,
        "publisher": "",
        "num_pages": str(rng.randrange(180, 560)),
        "publication_day": str(released.day),
        "isbn13": "",
        "publication_month": str(released.month),
        "edition_information": "",
        "publication_year": str(released.year),
        "url": "",
        "image_url": "",
        "book_id": str(catalog.book_ids[b]),
        "ratings_count": str(int(scale * rng.uniform(0.2, 0.6))),
        "work_id": str(catalog.work_ids[w]),
        "title": full_title,
        "title_without_series": title,
    }


def _shelves(genre1: int, genre2: int, scale: float, rng: random.Random) -> list[dict]:
    counts: dict[str, float] = {name: share * scale for name, share in GENERIC_SHELF_SHARES.items()}
    name, related, _ = GENRES[genre1]
    counts[name] = 0.3 * scale
    for shelf in rng.sample(related, 2):
        counts[str(shelf)] = rng.uniform(0.03, 0.12) * scale
    if genre2 >= 0:
        counts[GENRES[genre2][0]] = 0.1 * scale
        counts[rng.choice(GENRES[genre2][1])] = rng.uniform(0.01, 0.04) * scale
    shelves = [
        {"count": str(max(1, int(value * rng.uniform(0.7, 1.3)))), "name": shelf}
        for shelf, value in counts.items()
    ]
    shelves.sort(key=lambda shelf: (-int(shelf["count"]), shelf["name"]))
    return shelves


def _descriptions(
    genre1: np.ndarray, genre2: np.ndarray, short: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """Build descriptions from 45% main-genre, 20% second-genre and 35% common words.

    Short (edition) descriptions have 8 to 19 words and are empty half of the time. The
    others have 30 to 69 words and are empty 5% of the time.
    """
    vocabularies = [words for _, _, words in GENRES] + [COMMON_WORDS]
    offsets = np.cumsum([0] + [len(words) for words in vocabularies])
    sizes = np.diff(offsets)
    flat = np.array([word for words in vocabularies for word in words], dtype=object)

    n = len(genre1)
    n_words = np.where(short, rng.integers(8, 20, n), rng.integers(30, 70, n))
    n_words = np.where(rng.random(n) < np.where(short, 0.5, 0.05), 0, n_words)
    owner = np.repeat(np.arange(n), n_words)
    kind = rng.choice(3, size=len(owner), p=[0.45, 0.2, 0.35])
    second = np.where(genre2 >= 0, genre2, genre1)
    vocabulary = np.select([kind == 0, kind == 1], [genre1[owner], second[owner]], len(GENRES))
    words = flat[
        offsets[vocabulary] + np.floor(rng.random(len(owner)) * sizes[vocabulary]).astype(np.int64)
    ]

    texts = []
    bounds = np.concatenate(([0], np.cumsum(n_words)))
    for i in range(n):
        book_words = words[bounds[i] : bounds[i + 1]]
        sentences = []
        for first in range(0, len(book_words), 10):
            sentence = " ".join(book_words[first : first + 10])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        texts.append(" ".join(sentences))
    return texts


def _edition_title(title: str, rng: random.Random) -> str:
    """Spell `title` differently so that only its normalised form matches the original."""
    variant = rng.randrange(3)
    if variant == 0:
        return title.upper()
    if variant == 1:
        return title.replace(" ", "  ", 1) + "!"
    return title.lower().replace(" ", " - ", 1)


class _NameMaker:
    """Deterministic made-up names; book titles are unique after normalisation."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used_titles: set[str] = set()

    def word(self) -> str:
        n = self.rng.randrange(2, 4)
        return "".join(self.rng.choices(SYLLABLES, k=n)).capitalize()

    def person(self) -> str:
        return f"{self.word()} {self.word()}"

    def series(self, genre_words: tuple[str, ...]) -> str:
        noun = self.rng.choice(genre_words).capitalize()
        kind = self.rng.choice(["Chronicles", "Saga", "Trilogy", "Series", "Cycle"])
        return f"The {self.word()} {noun} {kind}"

    def title(self, genre_words: tuple[str, ...]) -> str:
        first, second = (w.capitalize() for w in self.rng.choices(genre_words, k=2))
        pattern = self.rng.randrange(4)
        title = (
            f"The {first} of {self.word()}",
            f"{self.word()}'s {first}",
            f"{first} and {second}",
            f"The {self.word()} {first}",
        )[pattern]
        while _normalise(title) in self.used_titles:
            title = f"{title} {self.word()}"
        self.used_titles.add(_normalise(title))
        return title


def _normalise(title: str) -> str:
    letters = "".join(c for c in title.lower() if c.isascii() and (c.isalnum() or c == " "))
    return " ".join(letters.split())


def _write_json_lines(path: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(record) + "\n" for record in records)
    tmp = path.with_name(path.name + ".tmp")
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz,
    ):
        gz.write(text.encode("utf-8"))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Interactions


class _Samplers:
    """Popularity-weighted draws of works from contiguous ranges of sorted index arrays.

    Each index sorts works by a group (genre, author or none) and then by release date, so the
    works of one group released by a date form a prefix of the group's range and the recent
    releases a sub-range. A draw picks position i in [lo, hi) with probability proportional to
    the popularity of the work there, by inverting the cumulative weights.
    """

    def __init__(self, catalog: _Catalog) -> None:
        works = np.arange(catalog.n_works)
        has_second = catalog.genre2 >= 0
        genre_works = np.concatenate((works, works[has_second]))
        genre_keys = np.concatenate((catalog.genre1, catalog.genre2[has_second]))
        genre_weights = np.concatenate((catalog.popularity, 0.5 * catalog.popularity[has_second]))
        self.genre = self._index(genre_keys, genre_works, genre_weights, catalog.release)
        self.author = self._index(catalog.author, works, catalog.popularity, catalog.release)
        self.all = self._index(np.zeros_like(works), works, catalog.popularity, catalog.release)

    @staticmethod
    def _index(
        keys: np.ndarray, works: np.ndarray, weights: np.ndarray, release: np.ndarray
    ) -> dict[str, np.ndarray]:
        order = np.lexsort((release[works], keys))
        return {
            "keys": keys[order].astype(np.float64),
            "release": release[works][order],
            "works": works[order],
            "cum": np.cumsum(weights[order]),
        }

    @staticmethod
    def bounds(
        index: dict[str, np.ndarray], keys: np.ndarray, t_from: np.ndarray, t_to: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Range of works with group `keys` released in (t_from, t_to]."""
        # Group and release day are folded into one sortable number. Releases lie within
        # +-10,000 days and bounds are clipped to +-40,000, so no range reaches another group.
        span = 1e5
        t_from = np.clip(t_from, -4e4, 4e4)
        t_to = np.clip(t_to, -4e4, 4e4)
        sorted_key = index["keys"] * span + index["release"]
        lo = np.searchsorted(sorted_key, keys * span + t_from, side="right")
        hi = np.searchsorted(sorted_key, keys * span + t_to, side="right")
        return lo, hi

    @staticmethod
    def draw(
        index: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Draw one work per range; -1 where the range is empty."""
        cum = index["cum"]
        base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        top = np.where(hi > 0, cum[np.maximum(hi - 1, 0)], 0.0)
        target = base + rng.random(len(lo)) * (top - base)
        position = np.clip(np.searchsorted(cum, target, side="right"), lo, np.maximum(hi - 1, lo))
        position = np.minimum(position, len(cum) - 1)
        return np.where(hi > lo, index["works"][position], -1)


def _write_interactions(
    dest: Path,
    catalog: _Catalog,
    n_users: int,
    mean_items: float,
    seed: np.random.SeedSequence,
    show_progress: bool,
) -> int:
    samplers = _Samplers(catalog)
    book_ids = pl.Series(catalog.book_ids.astype(str))
    n_chunks = math.ceil(n_users / USERS_PER_CHUNK)
    chunk_seeds = seed.spawn(n_chunks)
    path = dest / INTERACTIONS_FILE
    tmp = path.with_name(path.name + ".tmp")
    rows = 0

    # Compression runs in a second thread (zlib releases the GIL) while the next chunk is built.
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=1) as gz,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):
        pending: Future | None = None
        chunks = _chunk_bounds(n_users, USERS_PER_CHUNK)
        for chunk_seed, (first, last) in tqdm(
            zip(chunk_seeds, chunks, strict=True),
            total=n_chunks,
            desc="demo interactions",
            unit="chunk",
            disable=not show_progress,
        ):
            rng = np.random.default_rng(chunk_seed)
            frame = _interaction_chunk(catalog, samplers, first, last, mean_items, rng)
            data = _format_lines(frame, book_ids, first, last, rng)
            rows += frame.height
            if pending is not None:
                pending.result()
            pending = writer.submit(gz.write, data)
        if pending is not None:
            pending.result()
    os.replace(tmp, path)
    return rows


def _chunk_bounds(n: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(0, n, size):
        yield first, min(n, first + size)


def _interaction_chunk(
    catalog: _Catalog,
    samplers: _Samplers,
    first: int,
    last: int,
    mean_items: float,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Generate the interactions of users `first..last-1`, sorted like the official file."""
    n_users = last - first
    n_genres = len(GENRES)
    taste = 0.95 * rng.dirichlet(np.full(n_genres, 0.2), size=n_users) + 0.05 * GENRE_PRIOR
    sigma = 1.1
    counts = 1 + np.floor(
        rng.lognormal(math.log(mean_items - 1) - sigma**2 / 2, sigma, size=n_users)
    ).astype(np.int64)
    counts = np.minimum(counts, max(1, catalog.n_works // 3))
    joined = _growth_days(rng.random(n_users), 0.0, TIMELINE_DAYS - 5.0)
    active_days = 30.0 + rng.exponential(ACTIVE_DAYS_MEAN, size=n_users)
    top_genre = taste.argmax(axis=1)
    favourites = np.stack(
        [_favourite_authors(catalog, samplers, top_genre, rng) for _ in range(2)], axis=1
    )

    user, day = _activity_days(counts, joined, active_days, rng)
    channel = rng.choice(len(CHANNEL_SHARES), size=len(user), p=list(CHANNEL_SHARES.values()))
    cum_taste = np.cumsum(taste, axis=1)
    genre = (rng.random(len(user))[:, None] > cum_taste[user]).sum(axis=1).clip(0, n_genres - 1)
    author = favourites[user, rng.integers(2, size=len(user))]
    work = _pick_works(samplers, channel, genre, author, day, rng)

    user, work, day = _add_series_reads(catalog, user, work, day, rng)
    frame = (
        pl.DataFrame({"user": user, "work": work, "day": day})
        .sort("user", "day")
        .unique(["user", "work"], keep="first", maintain_order=True)
    )
    user, work, book, day = _add_second_editions(
        catalog, frame["user"].to_numpy(), frame["work"].to_numpy(), frame["day"].to_numpy(), rng
    )

    affinity = taste[user, catalog.genre1[work]] + np.where(
        catalog.genre2[work] >= 0, 0.5 * taste[user, np.maximum(catalog.genre2[work], 0)], 0.0
    )
    frame = pl.DataFrame({"user": user + first, "book": book, "day": day})
    return frame.with_columns(
        genre=pl.Series(catalog.genre1[work]), **_shelf_state(day, affinity, rng)
    ).sort("user", "day", "book", descending=[False, True, False])


def _add_second_editions(
    catalog: _Catalog,
    user: np.ndarray,
    work: np.ndarray,
    day: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pick each read's edition, and add a later read of another edition for some readers.

    The extra reads become duplicate user-item pairs once editions are merged.
    """
    book = _pick_editions(catalog, work, rng)
    again = (catalog.edition_count[work] > 0) & (rng.random(len(work)) < SECOND_EDITION_PROB)
    second = np.where(book[again] == work[again], -1, work[again])
    second = np.where(second < 0, _pick_editions(catalog, work[again], rng, always=True), second)
    second_day = day[again] + rng.exponential(60.0, int(again.sum()))
    inside = second_day < TIMELINE_DAYS
    return (
        np.concatenate((user, user[again][inside])),
        np.concatenate((work, work[again][inside])),
        np.concatenate((book, second[inside])),
        np.concatenate((day, second_day[inside])),
    )


def _shelf_state(
    day: np.ndarray, affinity: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Draw is_read, rating and the other per-read fields of the interactions file.

    Reads near the end of the timeline are less often finished. Ratings (1 to 5, 0 when
    unrated) grow with the reader's taste affinity for the book's genres.
    """
    n = len(day)
    until_end = TIMELINE_DAYS - day
    is_read = rng.random(n) < 0.6 * (1.0 - 0.6 * np.exp(-until_end / 60.0))
    rated = is_read & (rng.random(n) < 0.55)
    stars = np.rint(3.2 + 2.5 * (affinity - 0.3) + rng.normal(0, 0.9, n))
    return {
        "is_read": is_read,
        "rating": np.where(rated, stars.clip(1, 5), 0).astype(np.int64),
        "updated": day + np.minimum(rng.exponential(20.0, n), rng.random(n) * until_end),
        "read_after": rng.exponential(15.0, n),
        "started_before": rng.exponential(7.0, n),
        "has_read_at": is_read & (rng.random(n) < 0.75),
        "has_started_at": rng.random(n) < 0.6,
        "has_review": rated & (rng.random(n) < 0.05),
    }


def _growth_days(u: np.ndarray, t_from: np.ndarray | float, t_to: float) -> np.ndarray:
    """Invert the CDF of a density growing as exp(GROWTH_PER_DAY * t) on [t_from, t_to]."""
    g = GROWTH_PER_DAY
    low = np.exp(g * np.asarray(t_from, dtype=np.float64))
    high = math.exp(g * t_to)
    return np.log(low + u * (high - low)) / g


def _pick_works(
    samplers: _Samplers,
    channel: np.ndarray,
    genre: np.ndarray,
    author: np.ndarray,
    day: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw each interaction's work through its channel (see CHANNEL_SHARES)."""
    work = np.full(len(channel), -1, dtype=np.int64)
    earliest = -1e9
    channels = (
        (1, samplers.author, author, earliest),
        (2, samplers.genre, genre, day - NEW_RELEASE_WINDOW_DAYS),
        (3, samplers.all, np.zeros(len(channel)), earliest),
    )
    for code, index, keys, t_from in channels:
        rows = np.flatnonzero(channel == code)
        t_from = t_from[rows] if isinstance(t_from, np.ndarray) else np.full(len(rows), t_from)
        lo, hi = samplers.bounds(index, keys[rows], t_from, day[rows])
        work[rows] = samplers.draw(index, lo, hi, rng)

    # The genre channel is also the fallback when an author or recent-release range is
    # empty, and any work released by that day is the last fallback.
    rows = np.flatnonzero(work < 0)
    lo, hi = samplers.bounds(samplers.genre, genre[rows], np.full(len(rows), earliest), day[rows])
    work[rows] = samplers.draw(samplers.genre, lo, hi, rng)
    rows = np.flatnonzero(work < 0)
    lo, hi = samplers.bounds(
        samplers.all, np.zeros(len(rows)), np.full(len(rows), earliest), day[rows]
    )
    work[rows] = samplers.draw(samplers.all, lo, hi, rng)
    return work


def _pick_editions(
    catalog: _Catalog, work: np.ndarray, rng: np.random.Generator, always: bool = False
) -> np.ndarray:
    """Book index of each read: the main edition, or sometimes one of the extra editions."""
    n = len(work)
    has_extra = catalog.edition_count[work] > 0
    use_extra = has_extra & (always | (rng.random(n) < EDITION_PICK_PROB))
    offset = np.floor(rng.random(n) * np.maximum(catalog.edition_count[work], 1)).astype(np.int64)
    return np.where(use_extra, catalog.edition_start[work] + offset, work)


def _activity_days(
    counts: np.ndarray, joined: np.ndarray, active_days: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Date each user's interactions uniformly over their active period.

    Rows after the end of the timeline are dropped, except for users who would lose all of
    them: their period is shortened to end with the timeline, so every user keeps a row.
    """
    user = np.repeat(np.arange(len(counts)), counts)
    u = rng.random(len(user))
    day = joined[user] + u * active_days[user]
    inside = day <= TIMELINE_DAYS
    has_inside = np.bincount(user, weights=inside, minlength=len(counts)) > 0
    squeezed = joined[user] + u * (TIMELINE_DAYS - joined[user])
    day = np.where(has_inside[user], day, squeezed)
    keep = inside | ~has_inside[user]
    return user[keep], day[keep]


def _favourite_authors(
    catalog: _Catalog, samplers: _Samplers, genre: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw one author per user: the author of a popularity-weighted work of `genre`."""
    lo, hi = samplers.bounds(
        samplers.genre, genre, np.full(len(genre), -1e9), np.full(len(genre), 1e9)
    )
    work = samplers.draw(samplers.genre, lo, hi, rng)
    return np.where(work >= 0, catalog.author[np.maximum(work, 0)], 0)


def _add_series_reads(
    catalog: _Catalog,
    user: np.ndarray,
    work: np.ndarray,
    day: np.ndarray,
    rng: np.random.Generator,
    rounds: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add reads of the next volume after a series volume, for up to `rounds` volumes."""
    users, works, days = [user], [work], [day]
    for _ in range(rounds):
        nxt = catalog.next_in_series[work]
        follow = (nxt >= 0) & (rng.random(len(work)) < SERIES_NEXT_PROB)
        user, nxt, day = user[follow], nxt[follow], day[follow]
        day = np.maximum(day, catalog.release[nxt]) + rng.exponential(45.0, len(nxt))
        keep = day < TIMELINE_DAYS
        user, work, day = user[keep], nxt[keep], day[keep]
        users.append(user)
        works.append(work)
        days.append(day)
    return np.concatenate(users), np.concatenate(works), np.concatenate(days)


def _format_lines(
    frame: pl.DataFrame, book_ids: pl.Series, first: int, last: int, rng: np.random.Generator
) -> bytes:
    """Render a chunk as JSON lines with the field order and spacing of the official file."""
    if frame.height == 0:
        return b""
    user_ids = _hex_strings(last - first, rng)
    review_ids = _hex_strings(frame.height, rng)
    review_words = pl.Series([" ".join(words[:5]) for _, _, words in GENRES])
    read_day = pl.min_horizontal(pl.col("day") + pl.col("read_after"), pl.lit(TIMELINE_DAYS))
    started_day = pl.max_horizontal(read_day - pl.col("started_before"), pl.col("day"))

    lines = frame.with_columns(
        user_id=user_ids.gather(frame["user"] - first),
        book_id=book_ids.gather(frame["book"]),
        review_id=review_ids,
        is_read_text=pl.when("is_read").then(pl.lit("true")).otherwise(pl.lit("false")),
        review=pl.when("has_review")
        .then(review_words.gather(frame["genre"]))
        .otherwise(pl.lit("")),
        date_added=_goodreads_date(pl.col("day")),
        date_updated=_goodreads_date(pl.col("updated")),
        read_at=pl.when("has_read_at").then(_goodreads_date(read_day)).otherwise(pl.lit("")),
        started_at=pl.when(pl.col("has_read_at") & pl.col("has_started_at"))
        .then(_goodreads_date(started_day))
        .otherwise(pl.lit("")),
    ).select(
        pl.format(
            '{{"user_id": "{}", "book_id": "{}", "review_id": "{}", "is_read": {}, '
            '"rating": {}, "review_text_incomplete": "{}", "date_added": "{}", '
            '"date_updated": "{}", "read_at": "{}", "started_at": "{}"}}',
            "user_id",
            "book_id",
            "review_id",
            "is_read_text",
            "rating",
            "review",
            "date_added",
            "date_updated",
            "read_at",
            "started_at",
        )
    )
    buffer = io.BytesIO()
    lines.write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


def _goodreads_date(days: pl.Expr) -> pl.Expr:
    """Days since START as Pacific time text, like `Wed Mar 29 00:12:52 -0700 2017`."""
    start_us = int(START.timestamp() * 1_000_000)
    micros = (days * 86_400.0).floor().cast(pl.Int64) * 1_000_000 + start_us
    return (
        micros.cast(pl.Datetime("us", "UTC"))
        .dt.convert_time_zone(LOS_ANGELES)
        .dt.strftime(GOODREADS_DATE_FORMAT)
    )


def _hex_strings(n: int, rng: np.random.Generator) -> pl.Series:
    """`n` random 32-character hex strings, the shape of Goodreads user and review ids."""
    # A fixed-size binary array keeps bytes that numpy's "S16" type would strip (trailing NULs).
    raw = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), n, [None, pa.py_buffer(rng.bytes(16 * n))]
    )
    return pl.Series(pl.from_arrow(raw)).cast(pl.Binary).bin.encode("hex")


def _readme(n_users: int, n_books: int, rows: int, seed: int) -> str:
    return (
        "SYNTHETIC DATA. Nothing in this folder comes from Goodreads or from real readers.\n\n"
        "BookRecs' demo generator (bookrecs/data/demo.py) wrote these files in the format of the\n"
        "UCSD Book Graph Young Adult files (field names, value types, date format), so that the\n"
        "demo runs through the same reader and preparation as the real data.\n\n"
        f"seed: {seed}\nusers: {n_users:,}\nbook_ids (editions included): {n_books:,}\n"
        f"interactions: {rows:,}\n"
    )
