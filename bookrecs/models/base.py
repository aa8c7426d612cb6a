"""The interface every recommender implements: fit, recommend, similar items, save, load.

Models work in internal indices (see `bookrecs.interactions`). `recommend` scores users in
batches and takes the top k with `numpy.argpartition`, so evaluating ~190k users is a handful
of dense matrix products rather than a Python loop per user.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from bookrecs.exceptions import ModelLoadError, NotFittedError
from bookrecs.interactions import TrainData

logger = logging.getLogger("bookrecs.models")

FORMAT_VERSION = 1
META_FILE = "model.json"
STATE_FILE = "state.npz"
SEEN_FILE = "seen.npz"
# Batches scored at once by `recommend` (one per core on the 2-core reference machine).
RECOMMEND_THREADS = int(os.environ.get("BOOKRECS_RECOMMEND_THREADS", "2"))


class Recommender(ABC):
    """Base class of all recommenders.

    Subclasses set `name`, implement `_fit` and `score`, and list their fitted arrays in
    `_get_state` / `_set_state` so that `save` and `load` round-trip exactly.

    Parameters
    ----------
    seed
        Seed of every random choice the model makes.
    show_progress
        Show tqdm progress bars on long loops.
    **params
        Model hyperparameters; stored in `params` and saved with the model.
    """

    name: ClassVar[str] = "base"

    def __init__(self, seed: int = 42, show_progress: bool = False, **params: Any) -> None:
        self.seed = seed
        self.show_progress = show_progress
        self.params: dict[str, Any] = params
        self.n_users = 0
        self.n_items = 0
        self.user_items_: sp.csr_matrix | None = None
        self.fitted = False

    # ---- fitting -------------------------------------------------------------------------
    def fit(self, data: TrainData) -> Self:
        """Fit on `data.user_items` (and metadata where the model uses it); keep the matrix
        so that `recommend` can exclude what each user already has."""
        self.n_users, self.n_items = data.user_items.shape
        self.user_items_ = data.user_items
        self._fit(data)
        self.fitted = True
        logger.info("fitted %s on %d users x %d items", self.name, self.n_users, self.n_items)
        return self

    @abstractmethod
    def _fit(self, data: TrainData) -> None: ...

    # ---- scoring -------------------------------------------------------------------------
    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Return a dense float32 array (len(users), n_items) of scores; higher is better."""

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        *,
        user_items: sp.csr_matrix | None = None,
        filter_seen: bool = True,
        batch_size: int = 4096,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-`k` item indices and scores for each user in `users`.

        Items in a user's row of `user_items` (default: the training matrix) are excluded
        when `filter_seen` is true. Rows are sorted by descending score; slots that cannot be
        filled hold item -1 and score -inf.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        seen = user_items if user_items is not None else self.user_items_
        k = min(k, self.n_items)
        ids = np.full((len(users), k), -1, dtype=np.int64)
        scores = np.full((len(users), k), -np.inf, dtype=np.float32)

        def run_batch(start: int) -> int:
            batch = users[start : start + batch_size]
            batch_scores = np.asarray(self.score(batch), dtype=np.float32)
            if filter_seen and seen is not None:
                mask_seen(batch_scores, seen[batch])
            end = start + len(batch)
            ids[start:end], scores[start:end] = self._top_k(batch_scores, k)
            return len(batch)

        # NumPy and BLAS release the GIL in scoring and partitioning, so batches overlap on
        # separate cores. Each batch writes its own rows, so the output does not depend on order.
        starts = range(0, len(users), batch_size)
        workers = min(RECOMMEND_THREADS, len(starts)) or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = pool.map(run_batch, starts)
            for _ in tqdm(
                done,
                total=len(starts),
                desc=f"recommend {self.name}",
                disable=not self.show_progress,
            ):
                pass
        return ids, scores

    def _top_k(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Pick each row's top `k` from masked scores; models with slot rules override this."""
        return top_k(scores, k)

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the `k` most similar items to each of `items` (the item itself excluded)."""
        raise NotImplementedError(f"{self.name} does not support similar_items")

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save parameters and fitted state to the directory `path` (created if missing)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "model": self.name,
            "seed": self.seed,
            "params": self.params,
            "n_users": self.n_users,
            "n_items": self.n_items,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        np.savez(path / STATE_FILE, **self._get_state())
        if self.user_items_ is not None:
            sp.save_npz(path / SEEN_FILE, self.user_items_.tocsr(), compressed=False)
        self._save_extra(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model saved by `save`; the subclass is chosen from the saved metadata."""
        from bookrecs.models import get_model_class

        path = Path(path)
        try:
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"cannot load model from {path}: {error}. Re-run training or promote another run."
            ) from None
        try:
            with np.load(path / STATE_FILE, allow_pickle=False) as state:
                arrays = {key: state[key] for key in state.files}
        except FileNotFoundError as error:
            raise ModelLoadError(
                f"cannot load model from {path}: {error}. Re-run training or promote another run."
            ) from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            # np.load reads a non-zip file as a pickle and its message suggests
            # allow_pickle=True, which would run code from the file, so it is not passed on.
            raise ModelLoadError(
                f"model file {path / STATE_FILE} is corrupt or truncated "
                f"({type(error).__name__}): re-run training or promote another version"
            ) from None
        if meta.get("format") != FORMAT_VERSION:
            raise ModelLoadError(
                f"model at {path} has format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        model_class = get_model_class(meta["model"])
        model = model_class(seed=meta["seed"], **meta["params"])
        model.n_users, model.n_items = meta["n_users"], meta["n_items"]
        try:
            model._set_state(arrays)
            model._load_extra(path)
            if (path / SEEN_FILE).exists():
                model.user_items_ = sp.load_npz(path / SEEN_FILE).tocsr()
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ModelLoadError(
                f"model at {path} has missing or invalid fitted state ({error!r}): "
                "re-run training or promote another run"
            ) from None
        model.fitted = True
        return model

    def _get_state(self) -> dict[str, np.ndarray]:
        """Return the fitted arrays to save; models with no fitted arrays keep the default."""
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027
        """Restore what `_get_state` returned."""

    def _save_extra(self, path: Path) -> None:  # noqa: B027
        """Write extra files (e.g. a feature pipeline) beside the arrays."""

    def _load_extra(self, path: Path) -> None:  # noqa: B027
        """Read what `_save_extra` wrote."""

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"{self.name} is not fitted: call fit() or load() first")

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{type(self).__name__}(seed={self.seed}{', ' if params else ''}{params})"


def mask_seen(scores: np.ndarray, seen: sp.csr_matrix) -> None:
    """Set `scores[i, j] = -inf` in place where `seen[i, j]` is stored."""
    seen = seen.tocsr()
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, scores) of the `k` largest scores per row, sorted descending.

    Entries whose score is -inf are returned as index -1, so a row never contains an item
    that was masked out. Ties are broken by the lower item index.
    """
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_cols), (n_rows, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best = np.take_along_axis(part_scores, order, axis=1)
    ids[~np.isfinite(best) & (best < 0)] = -1
    return ids, best.astype(np.float32)
