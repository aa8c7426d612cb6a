"""LightFM hybrid: WARP matrix factorisation whose item vectors are sums of feature embeddings.

Each item's row of the item-feature matrix contains an identity feature (its own id) and its
content features (`bookrecs.features`). LightFM learns one embedding per feature, and an item's
representation is the weighted sum of its features' embeddings:

    item_vector(i) = sum_f x[i, f] * E[f],    item_bias(i) = sum_f x[i, f] * b[f]
    score(u, i)    = U[u] . item_vector(i) + item_bias(i) + user_bias(u)

Only items with train interactions take part in fitting. A cold item never trains an identity
embedding, so by default (`cold_identity=False`) its row contains content features only and its
vector comes entirely from what warm books with the same shelves, authors or series learnt.
A book that arrives after training is scored the same way (`score_new_items`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from lightfm import LightFM
from tqdm.auto import tqdm

from bookrecs.exceptions import ConfigError, DataError
from bookrecs.features import (
    FEATURES_FILE,
    ItemFeaturizer,
    csr_from_arrays,
    csr_to_arrays,
    fit_item_features,
)
from bookrecs.interactions import TrainData
from bookrecs.models.base import Recommender, top_k

logger = logging.getLogger("bookrecs.models.lightfm")

# Defaults chosen on the validation splits of the demo data and MovieLens (docs/hybrid.md).
DEFAULTS: dict[str, Any] = {
    "no_components": 48,
    "learning_rate": 0.05,
    "epochs": 15,
    "item_alpha": 1e-4,
    "user_alpha": 1e-4,
    "loss": "warp",
    "max_sampled": 10,
    "identity_share": 0.5,
    "cold_identity": False,
    "cold_content_weight": None,
    "use_weights": False,
    "cold_slots": 2,
    "popularity_weight": 1.0,
    "feature_weights": {},
    "features": {},
}


class LightFMRecommender(Recommender):
    """Hybrid LightFM recommender that also ranks books without any readers.

    Parameters
    ----------
    seed
        Seed of the embedding initialisation and of WARP's negative sampling.
    show_progress
        Show a tqdm bar over epochs.
    no_components
        Embedding dimension.
    learning_rate
        Adagrad learning rate.
    epochs
        Passes over the training interactions.
    item_alpha, user_alpha
        L2 penalties on feature embeddings, per sample.
    loss
        LightFM loss: "warp" (default), "bpr", "warp-kos" or "logistic".
    max_sampled
        WARP: maximum negatives drawn per positive before giving up.
    identity_share
        Share of an item's feature row given to its identity feature when it also has
        content features (rows sum to 1); 1.0 ignores content for warm items.
    cold_identity
        Give cold items their identity feature too. Those embeddings never train, so this
        adds noise; it exists to measure that choice.
    cold_content_weight
        Weight of the content features in the row of an item without identity feature.
        None (default) uses 1 - identity_share, the same weight as for warm items, so cold
        and warm scores are on one scale; 1.0 gives cold items full-weight content rows.
    use_weights
        Use the training weights (rating, is_read) as WARP sample weights.
    cold_slots
        Reserve this many of the k slots of `recommend` for the best-scored cold items.
    popularity_weight
        Weight of a popularity prior added to the scores of warm items: popularity_weight *
        scale * z(log(1 + train readers of the item)). Here z standardises over warm items and
        scale is the standard deviation of the model's raw scores at fit time, so the weight
        is unit-free. Cold and new books get prior 0, the prior of an average warm book,
        because a few readers do not predict how popular a book will become.
    feature_weights
        Weights of the content feature groups (see `bookrecs.features.GROUPS`).
    features
        Other `ItemFeaturizer` settings (vocabulary caps, tag weighting).

    Notes
    -----
    Training runs on one thread (`num_threads=1`) because LightFM threads update shared
    embeddings without locks, so multi-threaded runs are not repeatable. The cost is the lost
    parallel speed-up of the epochs.
    """

    name = "lightfm"

    def __init__(self, seed: int = 42, show_progress: bool = False, **params: Any) -> None:
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise ConfigError(
                f"unknown lightfm parameters {sorted(unknown)}: use {', '.join(sorted(DEFAULTS))}"
            )
        merged = {**DEFAULTS, **params}
        _validate(merged)
        super().__init__(seed=seed, show_progress=show_progress, **merged)
        self.featurizer: ItemFeaturizer | None = None
        self.user_embeddings_: np.ndarray | None = None
        self.user_biases_: np.ndarray | None = None
        self.item_embeddings_: np.ndarray | None = None
        self.item_biases_: np.ndarray | None = None
        self.content_embeddings_: np.ndarray | None = None
        self.content_biases_: np.ndarray | None = None
        self.cold_: np.ndarray | None = None
        self.item_prior_: np.ndarray | None = None
        self.epoch_seconds_: list[float] = []

    # ---- fitting ---------------------------------------------------------------------------
    def _fit(self, data: TrainData) -> None:
        p = self.params
        self.featurizer, content = fit_item_features(
            data, weights=p["feature_weights"], **p["features"]
        )
        self.cold_ = data.cold.copy()
        item_features = self._item_feature_matrix(content, data.cold)

        in_train = np.flatnonzero(data.user_items.getnnz(axis=0) > 0)
        interactions = data.user_items[:, in_train].tocoo()
        weights = interactions.copy() if p["use_weights"] else None
        interactions.data = np.ones_like(interactions.data)

        model = LightFM(
            no_components=p["no_components"],
            loss=p["loss"],
            learning_rate=p["learning_rate"],
            item_alpha=p["item_alpha"],
            user_alpha=p["user_alpha"],
            max_sampled=p["max_sampled"],
            random_state=np.random.RandomState(self.seed),
        )
        train_features = item_features[in_train]
        self.epoch_seconds_ = []
        epochs = tqdm(range(p["epochs"]), desc="lightfm epochs", disable=not self.show_progress)
        for epoch in epochs:
            start = time.perf_counter()
            model.fit_partial(
                interactions,
                item_features=train_features,
                sample_weight=weights,
                epochs=1,
                num_threads=1,
            )
            self.epoch_seconds_.append(time.perf_counter() - start)
            logger.debug("epoch %d took %.2f s", epoch + 1, self.epoch_seconds_[-1])

        embeddings = model.item_embeddings.astype(np.float32)
        biases = model.item_biases.astype(np.float32)
        self.item_embeddings_ = np.asarray(item_features @ embeddings, dtype=np.float32)
        self.item_biases_ = np.asarray(item_features @ biases, dtype=np.float32).ravel()
        self.content_embeddings_ = embeddings[data.n_items :]
        self.content_biases_ = biases[data.n_items :]
        self.user_embeddings_ = model.user_embeddings.astype(np.float32)
        self.user_biases_ = model.user_biases.astype(np.float32)
        self._fit_popularity_prior(data)
        logger.info(
            "lightfm trained %d epochs on %d items in %.1f s (%.2f s per epoch)",
            p["epochs"],
            len(in_train),
            sum(self.epoch_seconds_),
            float(np.mean(self.epoch_seconds_)) if self.epoch_seconds_ else 0.0,
        )

    def _fit_popularity_prior(self, data: TrainData) -> None:
        """Set `item_prior_`: the popularity prior of warm items, 0 for cold items."""
        weight = float(self.params["popularity_weight"])
        warm = ~data.cold
        if weight == 0.0 or not warm.any():
            self.item_prior_ = None
            return
        readers = np.log1p(np.asarray(data.user_items.getnnz(axis=0), dtype=np.float64))
        mean, std = readers[warm].mean(), readers[warm].std()
        std = std if std > 0 else 1.0
        # Scale of the raw scores, measured on a fixed sample of users so fits are repeatable.
        sample = np.random.default_rng(self.seed).permutation(data.n_users)[:1024]
        scale = float(self._raw_scores(np.sort(sample)).std())
        prior = np.where(warm, weight * scale * (readers - mean) / std, 0.0)
        self.item_prior_ = prior.astype(np.float32)

    def _item_feature_matrix(
        self, content: sp.csr_matrix | None, cold: np.ndarray
    ) -> sp.csr_matrix:
        """Build rows [identity | content]; rows of items with identity sum to 1."""
        n_items = len(cold)
        has_identity = np.ones(n_items, dtype=bool) if self.params["cold_identity"] else ~cold
        if content is None:
            content = sp.csr_matrix((n_items, 0), dtype=np.float32)
        content = _l1_rows(content)
        has_content = np.diff(content.indptr) > 0

        identity_share = np.where(has_content, self.params["identity_share"], 1.0)
        identity_share = np.where(has_identity, identity_share, 0.0).astype(np.float32)
        alone = self._content_weight_alone()
        content_share = np.where(has_identity, 1.0 - identity_share, alone).astype(np.float32)

        identity = sp.diags(identity_share, format="csr", dtype=np.float32)
        scaled_content = sp.diags(content_share, format="csr") @ content
        return sp.hstack([identity, scaled_content], format="csr", dtype=np.float32)

    def _content_weight_alone(self) -> float:
        weight = self.params["cold_content_weight"]
        return 1.0 - self.params["identity_share"] if weight is None else float(weight)

    # ---- scoring ---------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> np.ndarray:
        """Return U[users] @ item_vectors.T + item_biases + user_biases (+ prior), float32."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        scores = self._raw_scores(users)
        if self.item_prior_ is not None:
            scores += self.item_prior_[None, :]
        return scores

    def _raw_scores(self, users: np.ndarray) -> np.ndarray:
        scores = self.user_embeddings_[users] @ self.item_embeddings_.T
        scores += self.item_biases_[None, :]
        scores += self.user_biases_[users, None]
        return scores.astype(np.float32, copy=False)

    def item_representations(self, books: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return (biases, vectors) of books from their metadata alone, for unseen books."""
        self._check_fitted()
        if self.featurizer is None:
            raise DataError(
                "this lightfm model was trained without book metadata, so it cannot represent "
                "new books: retrain with a books table"
            )
        content = _l1_rows(self.featurizer.transform(books)) * self._content_weight_alone()
        vectors = np.asarray(content @ self.content_embeddings_, dtype=np.float32)
        biases = np.asarray(content @ self.content_biases_, dtype=np.float32).ravel()
        return biases, vectors

    def score_new_items(self, users: np.ndarray, books: pl.DataFrame) -> np.ndarray:
        """Score books never seen at training time for `users`: (len(users), books.height)."""
        biases, vectors = self.item_representations(books)
        users = np.asarray(users, dtype=np.int64)
        scores = self.user_embeddings_[users] @ vectors.T + biases[None, :]
        return (scores + self.user_biases_[users, None]).astype(np.float32)

    def _top_k(self, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the top `k` per row; with `cold_slots` > 0 some slots go to cold items."""
        cold_slots = min(int(self.params["cold_slots"]), k)
        if self.featurizer is None:
            # Without content features every cold item scores the same, so reserved slots
            # would hold arbitrary books.
            cold_slots = 0
        if cold_slots == 0:
            return super()._top_k(scores, k)
        return reserve_slots(scores, k, self.cold_, cold_slots)

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the `k` items with the highest cosine similarity of item vectors."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        norms = np.linalg.norm(self.item_embeddings_, axis=1)
        unit = self.item_embeddings_ / np.where(norms > 0, norms, 1.0)[:, None]
        similarity = unit[items] @ unit.T
        similarity[np.arange(len(items)), items] = -np.inf
        return top_k(similarity.astype(np.float32), k)

    # ---- persistence -----------------------------------------------------------------------
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            "user_embeddings": self.user_embeddings_,
            "user_biases": self.user_biases_,
            "item_embeddings": self.item_embeddings_,
            "item_biases": self.item_biases_,
            "content_embeddings": self.content_embeddings_,
            "content_biases": self.content_biases_,
            "cold": self.cold_,
            "epoch_seconds": np.asarray(self.epoch_seconds_, dtype=np.float64),
        }
        if self.item_prior_ is not None:
            state["item_prior"] = self.item_prior_
        if self.user_items_ is not None:
            state.update(csr_to_arrays("seen", self.user_items_))
        return state

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_embeddings_ = arrays["user_embeddings"]
        self.user_biases_ = arrays["user_biases"]
        self.item_embeddings_ = arrays["item_embeddings"]
        self.item_biases_ = arrays["item_biases"]
        self.content_embeddings_ = arrays["content_embeddings"]
        self.content_biases_ = arrays["content_biases"]
        self.cold_ = arrays["cold"].astype(bool)
        self.item_prior_ = arrays.get("item_prior")
        self.epoch_seconds_ = arrays["epoch_seconds"].tolist()
        if "seen_shape" in arrays:
            self.user_items_ = csr_from_arrays("seen", arrays)

    def _save_extra(self, path: Path) -> None:
        if self.featurizer is not None:
            self.featurizer.save(path)

    def _load_extra(self, path: Path) -> None:
        if (path / FEATURES_FILE).exists():
            self.featurizer = ItemFeaturizer.load(path)


def reserve_slots(
    scores: np.ndarray, k: int, cold: np.ndarray, cold_slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return top-`k` (ids, scores) per row in which at least `cold_slots` items are cold.

    The list is the best `k - cold_slots` items overall plus the best `cold_slots` cold items
    not already among them, sorted by score. When a row has fewer cold candidates, the
    remaining slots are filled with the next best items overall. Masked (-inf) items are
    never returned.
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    cold_slots = min(cold_slots, k)
    head, _ = top_k(scores, k - cold_slots) if k > cold_slots else (np.empty((n_rows, 0)), None)
    head = head.astype(np.int64)

    cold_scores = np.where(cold[None, :], scores, -np.inf).astype(np.float32)
    rows = np.repeat(np.arange(n_rows), head.shape[1])
    valid = head.ravel() >= 0
    cold_scores[rows[valid], head.ravel()[valid]] = -np.inf
    picks, _ = top_k(cold_scores, cold_slots)

    finite = scores[np.isfinite(scores)]
    lift = (float(np.abs(finite).max()) * 2.0 + 1.0) if finite.size else 1.0
    priority = scores.astype(np.float64, copy=True)
    for chosen in (head, picks):
        rows = np.repeat(np.arange(n_rows), chosen.shape[1])
        valid = chosen.ravel() >= 0
        priority[rows[valid], chosen.ravel()[valid]] += lift
    ids, _ = top_k(priority, k)

    chosen_scores = np.where(ids >= 0, np.take_along_axis(scores, np.maximum(ids, 0), 1), -np.inf)
    order = np.lexsort((ids, -chosen_scores), axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    chosen_scores = np.take_along_axis(chosen_scores, order, axis=1).astype(np.float32)
    ids[~np.isfinite(chosen_scores)] = -1
    return ids, chosen_scores


def _l1_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    sums = np.asarray(abs(matrix).sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ matrix, dtype=np.float32)


def _validate(params: dict[str, Any]) -> None:
    checks = [
        ("no_components", params["no_components"] >= 1, "an integer >= 1"),
        ("learning_rate", params["learning_rate"] > 0, "> 0"),
        ("epochs", params["epochs"] >= 1, "an integer >= 1"),
        ("item_alpha", params["item_alpha"] >= 0, ">= 0"),
        ("user_alpha", params["user_alpha"] >= 0, ">= 0"),
        ("identity_share", 0 <= params["identity_share"] <= 1, "in [0, 1]"),
        ("cold_slots", params["cold_slots"] >= 0, "an integer >= 0"),
        ("popularity_weight", params["popularity_weight"] >= 0, ">= 0"),
        (
            "cold_content_weight",
            params["cold_content_weight"] is None or params["cold_content_weight"] > 0,
            "None or > 0",
        ),
        ("loss", params["loss"] in ("warp", "bpr", "warp-kos", "logistic"), "warp or bpr"),
    ]
    for name, ok, requirement in checks:
        if not ok:
            raise ConfigError(
                f"lightfm {name}={params[name]!r} is invalid: it must be {requirement}"
            )
