"""Serving bundle: everything the recommendation service needs from one training run.

Layout of a bundle directory::

    bundle.json     format, run id, model name, metrics, creation time, sizes
    model/          the fitted model (`Recommender.save`), with its feature pipeline
    items.parquet   item_id, title, authors, series, shelves, cold, readers, year
    users.parquet   user_id in internal index order
    lists.npz       top_items / top_scores (n_users x k_precompute, -1 padded), seen items
                    (CSR indptr/indices), popular (+ popular_scores) and new item lists, and
                    similar_items / similar_scores (n_items x k_similar) when the model
                    supports `similar_items`

`export_bundle` writes it into a temporary sibling folder and renames it into place, so a
reader never sees a half-written bundle. `load_bundle` reads it fully and checks that the
parts agree before the service swaps it in.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from tqdm.auto import tqdm

from bookrecs.columns import AUTHORS, ITEM_ID, SERIES, TAG_COUNTS, TAGS, TITLE, USER_ID, YEAR
from bookrecs.exceptions import BookRecsError, ModelLoadError
from bookrecs.features import GENERIC_SHELVES
from bookrecs.interactions import IdMap, TrainData
from bookrecs.models.base import Recommender
from bookrecs.recommend import ItemFacts

logger = logging.getLogger("bookrecs.serving")

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
MODEL_DIR = "model"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
LISTS_FILE = "lists.npz"
SHELVES = "shelves"
COLD = "cold"
READERS = "readers"
# Shelves kept per book for reasons and metadata similarity (the most used tags).
MAX_SHELVES = 10
# Length of the "new books" list.
MAX_NEW = 10_000
# Dense float32 scores held at once while precomputing similar items (about 80 MB).
SIMILAR_BATCH_CELLS = 20_000_000
# Errors that reading a damaged bundle file raises: a truncated .npz raises BadZipFile or
# EOFError, a damaged member zlib.error, a damaged Parquet file PolarsError.
READ_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    TypeError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    pl.exceptions.PolarsError,
)


def export_bundle(
    dest: Path,
    model: Recommender,
    data: TrainData,
    *,
    run_id: str,
    metrics: dict[str, Any],
    k_precompute: int = 100,
    k_similar: int = 50,
    show_progress: bool = False,
    batch_size: int = 4096,
) -> Path:
    """Write the serving bundle of a fitted `model` to the new directory `dest`.

    Parameters
    ----------
    dest
        Bundle directory; must not exist yet (or be empty).
    model
        Fitted recommender trained on `data`.
    data
        The training data: id maps, the user x item matrix (seen items) and book metadata.
    run_id
        Id of the training run, shown by the service as part of its version.
    metrics
        Offline metrics of the model (JSON-serialisable), kept in `bundle.json`.
    k_precompute
        Length of each known user's precomputed list.
    k_similar
        Length of each book's precomputed similar-books list (skipped when the model does
        not implement `similar_items`).
    show_progress
        Show a progress bar while precomputing lists.
    batch_size
        Users scored per `model.recommend` call.

    Returns
    -------
    Path
        `dest`.
    """
    dest = Path(dest)
    if k_precompute < 1:
        raise ValueError(f"k_precompute={k_precompute} is invalid: use a value of at least 1")
    if dest.exists() and any(dest.iterdir()):
        raise BookRecsError(f"bundle folder {dest} is not empty: choose a new folder")
    if model.n_items != data.n_items or model.n_users != data.n_users:
        raise BookRecsError(
            f"model shape {model.n_users}x{model.n_items} differs from the training data "
            f"{data.n_users}x{data.n_items}: export the model with the data it was fitted on"
        )
    started = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save(work / MODEL_DIR)
        top_items, top_scores = _precompute(model, data, k_precompute, show_progress, batch_size)
        readers = np.bincount(data.user_items.indices, minlength=data.n_items)
        popular, popular_scores = popular_list(readers)
        items = item_table(data, readers)
        new = new_list(items)
        seen = data.user_items.tocsr()
        similar = _precompute_similar(model, k_similar, show_progress)
        extra = {}
        if similar is not None:
            extra = {"similar_items": similar[0].astype(np.int32), "similar_scores": similar[1]}
        np.savez(
            work / LISTS_FILE,
            **extra,
            top_items=top_items.astype(np.int32),
            top_scores=top_scores.astype(np.float32),
            seen_indptr=seen.indptr.astype(np.int64),
            seen_indices=seen.indices.astype(np.int32),
            popular=popular.astype(np.int32),
            popular_scores=popular_scores.astype(np.float32),
            new=new.astype(np.int32),
        )
        items.write_parquet(work / ITEMS_FILE)
        pl.DataFrame({USER_ID: data.users.ids.tolist()}, schema={USER_ID: pl.Utf8}).write_parquet(
            work / USERS_FILE
        )
        meta = {
            "format": BUNDLE_FORMAT,
            "run_id": run_id,
            "model": model.name,
            "metrics": metrics,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_users": data.n_users,
            "n_items": data.n_items,
            "k_precompute": int(top_items.shape[1]),
            "n_popular": len(popular),
            "n_new": len(new),
            "n_cold": int(data.cold.sum()),
            "k_similar": int(similar[0].shape[1]) if similar is not None else 0,
        }
        (work / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if dest.exists():
            dest.rmdir()
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    logger.info(
        "exported %s bundle of run %s to %s: %d users, %d items, top-%d lists in %.1f s",
        model.name,
        run_id,
        dest,
        data.n_users,
        data.n_items,
        top_items.shape[1],
        time.perf_counter() - started,
    )
    return dest


def _precompute(
    model: Recommender, data: TrainData, k: int, show_progress: bool, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    progress = model.show_progress
    model.show_progress = show_progress
    try:
        users = np.arange(data.n_users, dtype=np.int64)
        return model.recommend(users, k, filter_seen=True, batch_size=batch_size)
    finally:
        model.show_progress = progress


def _precompute_similar(
    model: Recommender, k: int, show_progress: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return every item's `k` most similar items, or None when the model has no notion."""
    if type(model).similar_items is Recommender.similar_items or k < 1:
        return None
    n_items = model.n_items
    batch = max(1, SIMILAR_BATCH_CELLS // max(n_items, 1))
    ids = np.full((n_items, min(k, n_items)), -1, dtype=np.int64)
    scores = np.full(ids.shape, -np.inf, dtype=np.float32)
    starts = range(0, n_items, batch)
    for start in tqdm(starts, desc="similar items", disable=not show_progress):
        items = np.arange(start, min(start + batch, n_items), dtype=np.int64)
        found, values = model.similar_items(items, ids.shape[1])
        ids[items, : found.shape[1]] = found
        scores[items, : found.shape[1]] = values
    return ids, scores


def popular_list(readers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return items with at least one reader by descending reader count, and their scores.

    The score is the reader count divided by the maximum count (1.0 for the top book);
    ties go to the lower item index.
    """
    order = np.lexsort((np.arange(len(readers)), -readers))
    order = order[readers[order] > 0]
    top = readers[order[0]] if len(order) else 1
    return order.astype(np.int64), (readers[order] / top).astype(np.float32)


def new_list(items: pl.DataFrame, limit: int = MAX_NEW) -> np.ndarray:
    """Return cold items, newest publication year first (unknown years last), at most `limit`."""
    frame = items.with_row_index("index").filter(pl.col(COLD))
    frame = frame.sort([YEAR, "index"], descending=[True, False], nulls_last=True)
    return frame["index"].head(limit).to_numpy().astype(np.int64)


def item_table(data: TrainData, readers: np.ndarray) -> pl.DataFrame:
    """Build the per-item table of the bundle, aligned with `data.items`."""
    n_items = data.n_items
    books = data.books
    empty_lists = pl.Series([[] for _ in range(n_items)], dtype=pl.List(pl.Utf8))

    def column(name: str, default: pl.Series) -> pl.Series:
        if books is None or name not in books.columns:
            return default
        return books[name]

    titles = column(TITLE, pl.Series([None] * n_items, dtype=pl.Utf8))
    years = column(YEAR, pl.Series([None] * n_items, dtype=pl.Int32)).cast(pl.Int32)
    shelves = _top_shelves(column(TAGS, empty_lists), column(TAG_COUNTS, empty_lists))
    return pl.DataFrame(
        {
            ITEM_ID: data.items.ids.tolist(),
            TITLE: titles.fill_null("").to_list(),
            AUTHORS: column(AUTHORS, empty_lists).fill_null([]).to_list(),
            SERIES: column(SERIES, empty_lists).fill_null([]).to_list(),
            SHELVES: shelves,
            COLD: data.cold.tolist(),
            READERS: readers.astype(np.int64).tolist(),
            YEAR: years.to_list(),
        },
        schema={
            ITEM_ID: pl.Utf8,
            TITLE: pl.Utf8,
            AUTHORS: pl.List(pl.Utf8),
            SERIES: pl.List(pl.Utf8),
            SHELVES: pl.List(pl.Utf8),
            COLD: pl.Boolean,
            READERS: pl.Int64,
            YEAR: pl.Int32,
        },
    )


def _top_shelves(tags: pl.Series, counts: pl.Series) -> list[list[str]]:
    """Return each book's most used shelves, lower-cased, without generic ones ("to-read")."""
    shelves = []
    for item_tags, item_counts in zip(tags.to_list(), counts.to_list(), strict=True):
        names = [(tag or "").strip().lower() for tag in (item_tags or [])]
        if item_counts and len(item_counts) == len(names):
            ranked = sorted(zip(item_counts, names, strict=True), key=lambda p: (-p[0], p[1]))
            names = [name for _, name in ranked]
        names = [name for name in names if name and name not in GENERIC_SHELVES]
        shelves.append(names[:MAX_SHELVES])
    return shelves


@dataclass
class ServingBundle:
    """A loaded serving bundle, ready for lookups.

    All arrays use the bundle's internal item indices; `item_index` and `user_index` map
    external ids to them.
    """

    path: Path
    version: str
    meta: dict[str, Any]
    model: Recommender
    items: IdMap
    users: IdMap
    item_index: dict[str, int]
    user_index: dict[str, int]
    titles: list[str]
    facts: ItemFacts
    cold: np.ndarray
    top_items: np.ndarray
    top_scores: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    popular: np.ndarray
    popular_scores: np.ndarray
    new: np.ndarray
    similar_items: np.ndarray | None = None
    similar_scores: np.ndarray | None = None
    reason_books: pl.DataFrame | None = None
    load_seconds: float = 0.0
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", ""))

    @property
    def n_items(self) -> int:
        return len(self.items)

    def seen(self, user: int) -> np.ndarray:
        """Return the item indices user `user` had in training."""
        return self.seen_indices[self.seen_indptr[user] : self.seen_indptr[user + 1]]

    def precomputed(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """Return user `user`'s precomputed top list (indices, scores), -1 padded."""
        return self.top_items[user], self.top_scores[user]


def bundle_fingerprint(path: str | Path) -> tuple[tuple[str, int, int], ...]:
    """Return (file, mtime_ns, size) of the bundle's files; (file, -1, -1) for a missing one.

    The service compares fingerprints to notice a bundle changed or vanished on disk.
    """
    path = Path(path)
    names = [BUNDLE_FILE, ITEMS_FILE, USERS_FILE, LISTS_FILE]
    model_dir = path / MODEL_DIR
    names += [f"{MODEL_DIR}/{name}" for name in ("model.json", "state.npz")]
    if model_dir.is_dir():
        extra = sorted(
            p.name for p in model_dir.iterdir() if p.name not in {"model.json", "state.npz"}
        )
        names += [f"{MODEL_DIR}/{name}" for name in extra]
    result = []
    for name in names:
        try:
            stat = (path / name).stat()
            result.append((name, stat.st_mtime_ns, stat.st_size))
        except OSError:
            result.append((name, -1, -1))
    return tuple(result)


def load_bundle(path: str | Path, version: str | None = None) -> ServingBundle:
    """Load a bundle written by `export_bundle`, model included.

    Parameters
    ----------
    path
        Bundle directory.
    version
        Name the service reports for this bundle (e.g. the model store tag); defaults to
        the run id.

    Raises
    ------
    ModelLoadError
        When a file is missing or corrupt, the format is unknown, or the parts disagree.
    """
    path = Path(path)
    started = time.perf_counter()
    try:
        meta = json.loads((path / BUNDLE_FILE).read_text())
        if meta.get("format") != BUNDLE_FORMAT:
            raise ModelLoadError(
                f"bundle {path} has format {meta.get('format')!r}, expected {BUNDLE_FORMAT}: "
                "re-export it with this version of bookrecs"
            )
        model = Recommender.load(path / MODEL_DIR)
        items_table = pl.read_parquet(path / ITEMS_FILE)
        users_table = pl.read_parquet(path / USERS_FILE)
        arrays = _read_lists(path / LISTS_FILE)
    except ModelLoadError:
        raise
    except READ_ERRORS as error:
        raise ModelLoadError(
            f"cannot load serving bundle {path}: {type(error).__name__}: {error}. "
            "Promote another version or re-export this run."
        ) from None

    required = {"top_items", "top_scores", "seen_indptr", "seen_indices", "popular", "new"}
    missing = required - set(arrays)
    if missing:
        raise ModelLoadError(f"bundle {path} lacks arrays {sorted(missing)}: re-export it")
    try:
        bundle = _assemble(path, version, meta, model, items_table, users_table, arrays)
    except READ_ERRORS as error:
        raise ModelLoadError(
            f"serving bundle {path} has invalid contents: {type(error).__name__}: {error}. "
            "Promote another version or re-export this run."
        ) from None
    bundle.load_seconds = time.perf_counter() - started
    logger.info(
        "loaded bundle %s (%s, run %s) from %s in %.2f s",
        bundle.version,
        meta.get("model"),
        meta.get("run_id"),
        path,
        bundle.load_seconds,
    )
    return bundle


def _read_lists(path: Path) -> dict[str, np.ndarray]:
    """Read every array of `lists.npz`, raising ModelLoadError for a damaged file."""
    try:
        with np.load(path, allow_pickle=False) as lists:
            return {key: lists[key] for key in lists.files}
    except FileNotFoundError:
        raise
    except READ_ERRORS as error:
        # np.load reads a file that is not a zip archive as a pickle and then suggests
        # allow_pickle=True, which would run code from the file: never pass that advice on.
        raise ModelLoadError(
            f"serving bundle file {path} is corrupt or truncated "
            f"({type(error).__name__}): promote another version or re-export this run"
        ) from None


def _assemble(
    path: Path,
    version: str | None,
    meta: dict[str, Any],
    model: Recommender,
    items_table: pl.DataFrame,
    users_table: pl.DataFrame,
    arrays: dict[str, np.ndarray],
) -> ServingBundle:
    items = IdMap(np.array(items_table[ITEM_ID].to_list(), dtype=object))
    users = IdMap(np.array(users_table[USER_ID].to_list(), dtype=object))
    _check_shapes(path, model, items, users, arrays)

    return ServingBundle(
        path=path,
        version=version or str(meta.get("run_id", path.name)),
        meta=meta,
        model=model,
        items=items,
        users=users,
        item_index={item: i for i, item in enumerate(items.ids.tolist())},
        user_index={user: i for i, user in enumerate(users.ids.tolist())},
        titles=items_table[TITLE].fill_null("").to_list(),
        facts=ItemFacts(
            authors=[frozenset(v or ()) for v in items_table[AUTHORS].to_list()],
            series=[frozenset(v or ()) for v in items_table[SERIES].to_list()],
            shelves=[frozenset(v or ()) for v in items_table[SHELVES].to_list()],
        ),
        cold=items_table[COLD].to_numpy().astype(bool),
        top_items=arrays["top_items"].astype(np.int64),
        top_scores=arrays["top_scores"],
        seen_indptr=arrays["seen_indptr"],
        seen_indices=arrays["seen_indices"].astype(np.int64),
        popular=arrays["popular"].astype(np.int64),
        popular_scores=arrays.get(
            "popular_scores", np.zeros(len(arrays["popular"]), dtype=np.float32)
        ),
        new=arrays["new"].astype(np.int64),
        similar_items=arrays["similar_items"].astype(np.int64)
        if "similar_items" in arrays
        else None,
        similar_scores=arrays.get("similar_scores"),
        reason_books=items_table.select(
            pl.col(SERIES), pl.col(AUTHORS), pl.col(SHELVES).alias(TAGS)
        ),
    )


def _check_shapes(
    path: Path, model: Recommender, items: IdMap, users: IdMap, arrays: dict[str, np.ndarray]
) -> None:
    problems = []
    if model.n_items != len(items):
        problems.append(f"model has {model.n_items} items, items.parquet {len(items)}")
    if arrays["top_items"].shape[0] != len(users):
        problems.append(f"top_items has {arrays['top_items'].shape[0]} rows, {len(users)} users")
    if len(arrays["seen_indptr"]) != len(users) + 1:
        problems.append(f"seen_indptr has {len(arrays['seen_indptr'])} entries")
    if "similar_items" in arrays and arrays["similar_items"].shape[0] != len(items):
        problems.append(f"similar_items has {arrays['similar_items'].shape[0]} rows")
    names = ["top_items", "popular", "new", "seen_indices"]
    names += ["similar_items"] if "similar_items" in arrays else []
    for name in names:
        values = arrays[name]
        if values.size and (values.max() >= len(items) or values.min() < -1):
            problems.append(f"{name} holds indices outside 0..{len(items) - 1}")
    if problems:
        raise ModelLoadError(f"bundle {path} is inconsistent: {'; '.join(problems)}. Re-export it")


def seen_matrix(bundle: ServingBundle) -> sp.csr_matrix:
    """Return the bundle's seen items as a CSR matrix (n_users x n_items)."""
    data = np.ones(len(bundle.seen_indices), dtype=np.float32)
    return sp.csr_matrix(
        (data, bundle.seen_indices, bundle.seen_indptr), shape=(len(bundle.users), bundle.n_items)
    )
