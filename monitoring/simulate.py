"""Simulated windows with known drift, to measure false alarms and detection of the checks.

Interactions are drawn independently from one stationary process, so two windows cut from
one table differ only by chance. Arguments shift one aspect of the current window.
`python -m monitoring.simulate --draws 200` prints how often each scenario is flagged.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA
from monitoring.config import DriftConfig
from monitoring.drift import analyse
from monitoring.impressions import read_impressions
from monitoring.windows import Window, default_windows

START = datetime(2020, 1, 1, tzinfo=UTC)
CUT = datetime(2020, 4, 1, tzinfo=UTC)
END = datetime(2020, 5, 1, tzinfo=UTC)
SEED_SALT = 7919
RATING_SHARES = np.array([0.45, 0.03, 0.05, 0.12, 0.17, 0.18])
LANGUAGES = ["eng", "eng", "eng", "spa", "fre", None]
SHELVES = ["fantasy", "romance", "dystopia", "mystery", "paranormal", "contemporary"]


def _popularity(n_books: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n_books + 1) ** 0.9
    return weights / weights.sum()


def books_table(n_books: int, rng: np.random.Generator, prefix: str = "b") -> pl.DataFrame:
    """Draw metadata of `n_books` books with ids `<prefix>0`, `<prefix>1`, ..."""
    tags = [list(rng.choice(SHELVES, size=2, replace=False)) for _ in range(n_books)]
    return pl.DataFrame(
        {
            "item_id": [f"{prefix}{index}" for index in range(n_books)],
            "title": [f"Book {index}" for index in range(n_books)],
            "description": [""] * n_books,
            "authors": [["a"]] * n_books,
            "series": [[]] * n_books,
            "tags": tags,
            "tag_counts": [[10, 5]] * n_books,
            "year": rng.integers(1990, 2020, n_books).tolist(),
            "language": [LANGUAGES[i] for i in rng.integers(0, len(LANGUAGES), n_books)],
        },
        schema=BOOK_SCHEMA,
    )


def interactions(
    rows: int,
    start: datetime,
    end: datetime,
    rng: np.random.Generator,
    n_users: int = 300,
    n_books: int = 400,
    rating_shift: int = 0,
    new_book_share: float = 0.0,
    new_book_prefix: str = "new",
) -> pl.DataFrame:
    """Draw `rows` interactions dated uniformly in [start, end).

    rating_shift adds to every nonzero rating (clipped to 5); new_book_share of the rows go
    to books `<new_book_prefix>0..` that the stationary process never produces.
    """
    items = rng.choice(n_books, size=rows, p=_popularity(n_books))
    item_ids = np.array([f"b{index}" for index in items], dtype=object)
    fresh = rng.random(rows) < new_book_share
    item_ids[fresh] = [f"{new_book_prefix}{index}" for index in rng.integers(0, 200, fresh.sum())]

    ratings = rng.choice(6, size=rows, p=RATING_SHARES).astype(float)
    ratings = np.where(ratings > 0, np.clip(ratings + rating_shift, 1, 5), 0)
    seconds = rng.uniform(0, (end - start).total_seconds(), rows)
    return pl.DataFrame(
        {
            "user_id": [f"u{index}" for index in rng.integers(0, n_users, rows)],
            "item_id": item_ids.tolist(),
            "rating": ratings,
            "is_read": (rng.random(rows) < 0.6).tolist(),
            "date_added": [start + timedelta(seconds=float(s)) for s in seconds],
        },
        schema=INTERACTION_SCHEMA,
    )


def two_windows(
    seed: int, reference_rows: int = 3000, current_rows: int = 1000, **shift
) -> pl.DataFrame:
    """Draw a reference period [START, CUT) and a current period [CUT, END), shifting the second."""
    # The reference split draws from default_rng(config.seed). Salting keeps this stream
    # apart from it, because equal streams would put exactly the popular books in half A.
    rng = np.random.default_rng([SEED_SALT, seed])
    reference = interactions(reference_rows, START, CUT, rng)
    current = interactions(current_rows, CUT, END, rng, **shift)
    return pl.concat([reference, current])


def write_impression_log(
    path: Path,
    requests: int,
    rng: np.random.Generator,
    popular_only: bool = False,
    k: int = 10,
    n_books: int = 400,
    fallback_share: float = 0.0,
    start: datetime = CUT,
) -> Path:
    """Write an impression log in the service's table layout.

    A normal model shows books drawn from reading popularity, with a few cold books; a
    popular-only model shows the `k` most popular books to everyone.
    """
    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE impressions (request_id TEXT PRIMARY KEY, ts TEXT, user_hash TEXT, "
        "variant TEXT, placement TEXT, endpoint TEXT, model_version TEXT, source TEXT, "
        "k INTEGER, items TEXT, latency_ms REAL, cold_items INTEGER)"
    )
    popularity = _popularity(n_books)
    rows = []
    for index in range(requests):
        if popular_only:
            shown = [f"b{book}" for book in range(k)]
        else:
            shown = [f"b{book}" for book in rng.choice(n_books, k, replace=False, p=popularity)]
        items = [
            {"item_id": item, "position": position, "score": 1.0 / position, "reason": "test"}
            for position, item in enumerate(shown, start=1)
        ]
        source = "popular" if rng.random() < fallback_share else "model"
        moment = start + timedelta(minutes=index)
        rows.append(
            (
                f"r{index}",
                moment.isoformat().replace("+00:00", "Z"),
                f"h{index % 50}",
                "A",
                "home",
                "/recommend",
                "v1",
                source,
                k,
                json.dumps(items),
                float(rng.gamma(4.0, 10.0)),
                0,
            )
        )
    connection.executemany("INSERT INTO impressions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    connection.commit()
    connection.close()
    return path


def shuffle_dates(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Permute date_added across rows, so every time window draws from one distribution."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(frame.height)
    return frame.with_columns(frame["date_added"].gather(order).alias("date_added"))


SCENARIOS: dict[str, dict] = {
    "same distribution": {},
    "ratings +1 star": {"rating_shift": 1},
    "30% of reading on new books": {"new_book_share": 0.3},
    "model shows only popular books": {"popular_only": True},
}
"""Scenario name -> shift of the current window (`popular_only` applies to the impression log)."""


def run_scenario(
    shift: dict, draws: int, config: DriftConfig, workdir: Path, requests: int = 300
) -> tuple[int, Counter]:
    """Run `draws` independent reports of one scenario.

    Returns the number of draws whose verdict was retrain, and how often each check drifted.
    """
    reference_window = Window("reference", START, CUT)
    current_window = Window("current", CUT, END)
    interaction_shift = {key: value for key, value in shift.items() if key != "popular_only"}
    flagged, drifted = 0, Counter()
    for draw in range(draws):
        rng = np.random.default_rng([SEED_SALT, draw, 1])
        frame = two_windows(draw, **interaction_shift)
        books = books_table(400, rng)
        path = workdir / f"impressions-{draw}.sqlite"
        path.unlink(missing_ok=True)
        write_impression_log(path, requests, rng, popular_only=shift.get("popular_only", False))
        log = read_impressions(path, current_window)
        summary = analyse(frame, books, reference_window, current_window, config, log)
        path.unlink()
        flagged += summary.verdict == "retrain"
        drifted.update(check.name for check in summary.drifted)
    return flagged, drifted


def run_shuffled(
    interactions: pl.DataFrame, draws: int, config: DriftConfig
) -> tuple[int, Counter]:
    """Compare the default windows of `interactions` after `draws` permutations of the dates.

    Returns the number of draws whose verdict was retrain, and how often each check drifted.
    """
    flagged, drifted = 0, Counter()
    for draw in range(draws):
        shuffled = shuffle_dates(interactions, draw)
        reference, current = default_windows(shuffled["date_added"], config.reference_quantile)
        summary = analyse(shuffled, None, reference, current, config)
        flagged += summary.verdict == "retrain"
        drifted.update(check.name for check in summary.drifted)
    return flagged, drifted


def _row(name: str, flagged: int, draws: int, drifted: Counter) -> str:
    checks = ", ".join(f"{check} {count}" for check, count in drifted.most_common())
    return f"| {name} | {flagged} ({flagged / draws:.1%}) | {checks or 'none'} |"


def main(argv: list[str] | None = None) -> int:
    """Print, per scenario, the share of draws flagged for retraining and the checks that fired."""
    parser = argparse.ArgumentParser(prog="python -m monitoring.simulate", description=main.__doc__)
    parser.add_argument("--draws", type=int, default=200, help="Independent draws per scenario.")
    parser.add_argument("--config", help="Thresholds (default: monitoring/drift.yaml).")
    parser.add_argument(
        "--goodreads-dir",
        help="Also compare windows of these Goodreads interactions after shuffling their dates.",
    )
    args = parser.parse_args(argv)
    config = DriftConfig.from_yaml(args.config) if args.config else DriftConfig.from_yaml()

    print(f"| scenario | flagged for retraining (of {args.draws}) | checks that drifted |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        for name, shift in SCENARIOS.items():
            flagged, drifted = run_scenario(shift, args.draws, config, Path(workdir))
            print(_row(name, flagged, args.draws, drifted))
    if args.goodreads_dir:
        from bookrecs.data.goodreads import read_goodreads

        dataset = read_goodreads(Path(args.goodreads_dir), show_progress=False)
        flagged, drifted = run_shuffled(dataset.interactions, args.draws, config)
        print(_row("Goodreads rows, dates shuffled", flagged, args.draws, drifted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
