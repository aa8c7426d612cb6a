"""Implicit-feedback matrix factorisation by alternating least squares (implicit's CPU solver)."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from bookrecs.exceptions import ConfigError, DataError, ModelLoadError
from bookrecs.interactions import TrainData
from bookrecs.models.base import Recommender, top_k

logger = logging.getLogger("bookrecs.models")


class ALSRecommender(Recommender):
    """Matrix factorisation for implicit feedback, the model of Hu, Koren and Volinsky.

    Minimises ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + regularization * (|X|^2 + |Y|^2)``
    with preference ``p_ui = 1`` where the user has the item and 0 elsewhere, and confidence
    ``c_ui = alpha * weight_ui`` on stored pairs and 1 elsewhere (implicit's convention).
    ``score(u, i) = x_u . y_i``. Items without train interactions (cold items) get zero
    factors, so they score 0.

    Parameters
    ----------
    seed, show_progress
        See `Recommender`. `seed` seeds the initial factors.
    factors
        Number of latent factors.
    regularization
        L2 penalty on both factor matrices.
    alpha
        Multiplier of the train weights in the confidence.
    iterations
        Number of ALS sweeps (users, then items).
    num_threads
        Solver threads. 1 keeps results exactly repeatable; BLAS is limited to one thread
        during fitting for the same reason.

    The defaults were picked on a validation split (the last part of train) of the small
    synthetic demo, where few factors and alpha = 3 did best. NOTE: they are not tuned on the
    real Goodreads data, where more factors are likely to pay off; set them in
    `TrainConfig.model_params`.

    Attributes
    ----------
    user_factors_, item_factors_ : numpy.ndarray
        float32 arrays (n_users, factors) and (n_items, factors).
    epoch_seconds_ : list of float
        Wall time of each sweep, in seconds (not saved with the model).
    """

    name: ClassVar[str] = "als"

    def __init__(
        self,
        seed: int = 42,
        show_progress: bool = False,
        *,
        factors: int = 16,
        regularization: float = 1.0,
        alpha: float = 3.0,
        iterations: int = 15,
        num_threads: int = 1,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(
                f"unknown als parameters {sorted(unknown)}: use factors, regularization, alpha, "
                "iterations, num_threads"
            )
        checks = [
            ("factors", factors, int(factors) >= 1, "at least 1"),
            ("regularization", regularization, float(regularization) >= 0.0, "0 or more"),
            ("alpha", alpha, float(alpha) > 0.0, "a value above 0"),
            ("iterations", iterations, int(iterations) >= 1, "at least 1"),
            ("num_threads", num_threads, int(num_threads) >= 0, "0 (all cores) or more"),
        ]
        for param, value, valid, rule in checks:
            if not valid:
                raise ConfigError(f"als {param}={value!r} is invalid: use {rule}")
        super().__init__(
            seed=seed,
            show_progress=show_progress,
            factors=int(factors),
            regularization=float(regularization),
            alpha=float(alpha),
            iterations=int(iterations),
            num_threads=int(num_threads),
        )
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None
        self.epoch_seconds_: list[float] = []

    def _fit(self, data: TrainData) -> None:
        if data.user_items.nnz == 0:
            raise DataError("als cannot fit an empty training matrix: check the split")
        params = self.params
        self.epoch_seconds_ = []

        def record_epoch(iteration: int, seconds: float, loss: float | None) -> None:
            self.epoch_seconds_.append(float(seconds))
            logger.debug("als sweep %d took %.2fs", iteration + 1, seconds)

        with threadpool_limits(limits=1, user_api="blas"):
            solver = AlternatingLeastSquares(
                factors=params["factors"],
                regularization=params["regularization"],
                alpha=params["alpha"],
                iterations=params["iterations"],
                num_threads=params["num_threads"],
                random_state=self.seed,
            )
            started = time.perf_counter()
            solver.fit(data.user_items, show_progress=self.show_progress, callback=record_epoch)
        logger.debug("als fit took %.2fs", time.perf_counter() - started)

        item_factors = np.asarray(solver.item_factors, dtype=np.float32)
        item_factors[np.diff(data.user_items.tocsc().indptr) == 0] = 0.0
        self.user_factors_ = np.asarray(solver.user_factors, dtype=np.float32)
        self.item_factors_ = item_factors

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_[np.asarray(users, dtype=np.int64)] @ self.item_factors_.T

    def similar_items(self, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the `k` items whose factors have the highest cosine with each item's.

        Items with zero factors (cold items) have no direction, so they are never returned
        and a cold query item gets a row of -1.
        """
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        norms = np.linalg.norm(self.item_factors_, axis=1)
        has_direction = norms > 0
        unit = np.zeros_like(self.item_factors_)
        unit[has_direction] = self.item_factors_[has_direction] / norms[has_direction, None]

        scores = unit[items] @ unit.T
        scores[:, ~has_direction] = -np.inf
        scores[~has_direction[items]] = -np.inf
        scores[np.arange(len(items)), items] = -np.inf
        return top_k(scores, k)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        factors = self.params["factors"]
        expected = {
            "user_factors": (self.n_users, factors),
            "item_factors": (self.n_items, factors),
        }
        for key, shape in expected.items():
            if key not in arrays or arrays[key].shape != shape:
                found = arrays[key].shape if key in arrays else "nothing"
                raise ModelLoadError(
                    f"als state needs {key} of shape {shape}, found {found}: "
                    "the saved model is corrupt, so re-run training"
                )
        self.user_factors_ = arrays["user_factors"].astype(np.float32)
        self.item_factors_ = arrays["item_factors"].astype(np.float32)
