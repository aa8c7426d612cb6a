"""Most-popular recommender: the same ranking for everyone, minus what each user has."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from bookrecs.exceptions import ConfigError, ModelLoadError
from bookrecs.interactions import TrainData
from bookrecs.models.base import Recommender

Measure = Literal["users", "weight"]
MEASURES: tuple[str, ...] = ("users", "weight")


class PopularRecommender(Recommender):
    """Recommender that ranks items by their popularity in the training matrix.

    Parameters
    ----------
    seed, show_progress
        See `Recommender`.
    measure
        ``"users"``: number of distinct train users with the item (default).
        ``"weight"``: sum of the item's train weights.

    Attributes
    ----------
    popularity_ : numpy.ndarray
        float32 popularity per item index; cold items (no train interactions) have 0.
        Equal popularity is ranked by the lower item index.
    """

    name: ClassVar[str] = "popular"

    def __init__(
        self,
        seed: int = 42,
        show_progress: bool = False,
        *,
        measure: Measure = "users",
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(f"unknown popular parameters {sorted(unknown)}: use only 'measure'")
        if measure not in MEASURES:
            raise ConfigError(f"popular measure={measure!r} is invalid: use one of {MEASURES}")
        super().__init__(seed=seed, show_progress=show_progress, measure=measure)
        self.measure = measure
        self.popularity_: np.ndarray | None = None

    def _fit(self, data: TrainData) -> None:
        matrix = data.user_items.tocsc()
        if self.measure == "users":
            matrix.eliminate_zeros()
            popularity = np.diff(matrix.indptr)
        else:
            popularity = np.asarray(matrix.sum(axis=0)).ravel()
        self.popularity_ = popularity.astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.repeat(self.popularity_[None, :], len(np.atleast_1d(users)), axis=0)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        if "popularity" not in arrays or arrays["popularity"].shape != (self.n_items,):
            raise ModelLoadError(
                f"popular state lacks a 'popularity' array of {self.n_items} items: "
                "the saved model is corrupt, so re-run training"
            )
        self.popularity_ = arrays["popularity"].astype(np.float32)
