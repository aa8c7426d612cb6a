"""Random recommender: the lower reference point for every learned model."""

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
# Multipliers of the murmur3 32-bit finaliser.
_MIX32_1 = np.uint32(0x85EBCA6B)
_MIX32_2 = np.uint32(0xC2B2AE35)
_ONE_BITS = np.uint32(0x3F800000)  # bit pattern of float32 1.0
_ROWS_PER_BLOCK = 64


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """Hash uint64 values elementwise; arithmetic wraps modulo 2**64."""
    values = values + _GOLDEN
    values = (values ^ (values >> np.uint64(30))) * _MIX_1
    values = (values ^ (values >> np.uint64(27))) * _MIX_2
    return values ^ (values >> np.uint64(31))


def _keys(stream: int, seed: int, indices: np.ndarray) -> np.ndarray:
    """Return independent-looking uint32 keys of `indices` for one seed and stream."""
    base = _splitmix64(np.array([seed % 2**64, stream], dtype=np.uint64))
    mixed = _splitmix64((base[0] ^ base[1]) ^ _splitmix64(indices.astype(np.uint64)))
    return (mixed >> np.uint64(32)).astype(np.uint32)


class RandomRecommender(Recommender):
    """Baseline that scores every item with a uniform pseudo-random number in [0, 1).

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
        user_keys = _keys(0, self.seed, np.asarray(users, dtype=np.int64))
        item_keys = _keys(1, self.seed, np.arange(self.n_items, dtype=np.int64))
        hashes = np.empty((len(user_keys), self.n_items), dtype=np.uint32)
        shifted = np.empty((min(_ROWS_PER_BLOCK, len(user_keys)), self.n_items), dtype=np.uint32)

        # Working on blocks of rows keeps the scratch array small, and every step runs in place.
        for start in range(0, len(user_keys), _ROWS_PER_BLOCK):
            block = hashes[start : start + _ROWS_PER_BLOCK]
            scratch = shifted[: len(block)]
            np.bitwise_xor(user_keys[start : start + len(block), None], item_keys, out=block)
            np.multiply(block, _MIX32_1, out=block)
            np.right_shift(block, np.uint32(15), out=scratch)
            np.bitwise_xor(block, scratch, out=block)
            np.multiply(block, _MIX32_2, out=block)
            # The top 23 bits become the mantissa of a float32 in [1, 2).
            np.right_shift(block, np.uint32(9), out=block)
            np.bitwise_or(block, _ONE_BITS, out=block)

        scores = hashes.view(np.float32)
        scores -= np.float32(1.0)
        return scores
