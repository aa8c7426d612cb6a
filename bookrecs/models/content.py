"""Content baseline: rank books by cosine similarity to the user's reading profile.

profile(u) = sum_i w[u, i] * x_i / sum_i w[u, i]     (x_i: L2-normalised content vector)
score(u, j) = cos(profile(u), x_j)

Cold books have content vectors like any other, so they are ranked by the same rule.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bookrecs.exceptions import ConfigError, DataError
from bookrecs.features import (
    FEATURES_FILE,
    ItemFeaturizer,
    csr_from_arrays,
    csr_to_arrays,
    fit_item_features,
    normalise_rows,
)
from bookrecs.interactions import TrainData
from bookrecs.models.base import Recommender, top_k

logger = logging.getLogger("bookrecs.models.content")

DEFAULTS: dict[str, Any] = {
    "use_weights": True,
    "chunk_size": 256,
    "feature_weights": {},
    "features": {},
}


class ContentRecommender(Recommender):
    """Content-based recommender over `bookrecs.features` vectors.

    Parameters
    ----------
    use_weights
        Weight each history book by its training weight; otherwise every book counts 1.
    chunk_size
        Users scored per sparse-dense product inside `score` (bounds memory to about
        chunk_size x n_features floats).
    feature_weights
        Weights of the content feature groups (see `bookrecs.features.GROUPS`).
    features
        Other `ItemFeaturizer` settings.
    """

    name = "content"

    def __init__(self, seed: int = 42, show_progress: bool = False, **params: Any) -> None:
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ConfigError(
                f"unknown content parameters {sorted(unknown)}: use {', '.join(sorted(DEFAULTS))}"
            )
        merged = {**DEFAULTS, **params}
        if int(merged["chunk_size"]) < 1:
            raise ConfigError(f"content chunk_size={merged['chunk_size']!r} must be >= 1")
        super().__init__(seed=seed, show_progress=show_progress, **merged)
        self.featurizer: ItemFeaturizer | None = None
        self.item_vectors_: sp.csr_matrix | None = None
        self.profiles_: sp.csr_matrix | None = None

    def _fit(self, data: TrainData) -> None:
        featurizer, content = fit_item_features(
            data, weights=self.params["feature_weights"], **self.params["features"]
        )
        if featurizer is None:
            raise DataError(
                "the content model needs book metadata, but this dataset has none: "
                "provide a books table or drop 'content' from the models"
            )
        self.featurizer = featurizer
        self.item_vectors_ = content

        history = data.user_items.astype(np.float32)
        if not self.params["use_weights"]:
            history = history.copy()
            history.data[:] = 1.0
        self.profiles_ = normalise_rows(history @ content)
        empty = int((np.diff(self.profiles_.indptr) == 0).sum())
        if empty:
            logger.info(
                "%d of %d users read only books without content features", empty, data.n_users
            )

    def score(self, users: np.ndarray) -> np.ndarray:
        """Return cosine similarities (len(users), n_items) between profiles and items."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        step = int(self.params["chunk_size"])
        for start in range(0, len(users), step):
            profiles = self.profiles_[users[start : start + step]].toarray()
            out[start : start + step] = (self.item_vectors_ @ profiles.T).T
        return out

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the `k` items whose content vectors have the highest cosine similarity."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        similarity = (self.item_vectors_[items] @ self.item_vectors_.T).toarray()
        similarity = similarity.astype(np.float32)
        similarity[np.arange(len(items)), items] = -np.inf
        return top_k(similarity, k)

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            **csr_to_arrays("item_vectors", self.item_vectors_),
            **csr_to_arrays("profiles", self.profiles_),
        }
        if self.user_items_ is not None:
            state.update(csr_to_arrays("seen", self.user_items_))
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = csr_from_arrays("item_vectors", arrays)
        self.profiles_ = csr_from_arrays("profiles", arrays)
        if "seen_shape" in arrays:
            self.user_items_ = csr_from_arrays("seen", arrays)

    def _save_extra(self, path: Path) -> None:
        self.featurizer.save(path)

    def _load_extra(self, path: Path) -> None:
        if (path / FEATURES_FILE).exists():
            self.featurizer = ItemFeaturizer.load(path)
