"""Random recommender: a floor that every learned model must beat."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bookrecs.exceptions import ConfigError
from bookrecs.interactions import TrainData
from bookrecs.models.base import Recommender

# Constants of the splitmix64 finaliser, a bijective 64-bit mixing function.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SCORE_BITS = 24  # float32 holds 24-bit integers exactly, so scores are exact multiples of 2**-24


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """Hash uint64 values elementwise; arithmetic wraps modulo 2**64."""
    values = values + _GOLDEN
    values = (values ^ (values >> np.uint64(30))) * _MIX_1
    values = (values ^ (values >> np.uint64(27))) * _MIX_2
    return values ^ (values >> np.uint64(31))


class RandomRecommender(Recommender):
    """Scores every item with a uniform pseudo-random number in [0, 1).

    The score of (user, item) is a hash of (seed, user, item), so it does not depend on which
    other users share a batch, and a saved and reloaded model returns identical lists. Cold
    items are scored like any other item.
    """

    name: ClassVar[str] = "random"

    def __init__(self, seed: int = 42, show_progress: bool = False, **unknown: Any) -> None:
        if unknown:
            raise ConfigError(f"random takes no parameters, got {sorted(unknown)}: remove them")
        super().__init__(seed=seed, show_progress=show_progress)

    def _fit(self, data: TrainData) -> None:
        """Nothing to learn: the scores depend only on the seed and the indices."""

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64).astype(np.uint64)
        seed = np.uint64(self.seed % 2**64)
        user_keys = _splitmix64(_splitmix64(np.full_like(users, seed)) ^ users)
        items = np.arange(self.n_items, dtype=np.uint64)
        hashes = _splitmix64(user_keys[:, None] ^ _splitmix64(items)[None, :])
        top_bits = (hashes >> np.uint64(64 - _SCORE_BITS)).astype(np.float32)
        return top_bits * np.float32(2.0**-_SCORE_BITS)
