"""Mapping between external ids and the internal integer indices that models use.

External ids (Goodreads `user_id`, `book_id`, or a catalogue's own ids) exist only at the edges;
every model, metric and matrix works with the integer indices defined here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from bookrecs.columns import ITEM_ID, USER_ID, WEIGHT
from bookrecs.split import Split


@dataclass(frozen=True)
class IdMap:
    """External string ids in index order: `ids[i]` is the external id of index `i`."""

    ids: np.ndarray

    @classmethod
    def from_values(cls, *columns: pl.Series) -> IdMap:
        """Build a map from the first occurrence order of sorted unique ids per column.

        Ids of the first column come first (sorted), then new ids of each next column (sorted),
        so train users and items get the lowest indices and the order is deterministic.
        """
        seen: list[str] = []
        known: set[str] = set()
        for column in columns:
            new = sorted(set(column.cast(pl.Utf8).drop_nulls().to_list()) - known)
            seen.extend(new)
            known.update(new)
        return cls(np.array(seen, dtype=object))

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, external: np.ndarray | pl.Series | list[str]) -> np.ndarray:
        """Return internal indices of `external` ids, -1 for ids not in the map."""
        values = external.to_numpy() if isinstance(external, pl.Series) else np.asarray(external)
        return pd.Index(self.ids).get_indexer(values.astype(object)).astype(np.int64)

    def external(self, indices: np.ndarray) -> np.ndarray:
        """Return external ids of internal `indices` (-1 becomes None)."""
        indices = np.asarray(indices)
        out = np.empty(indices.shape, dtype=object)
        valid = indices >= 0
        out[valid] = self.ids[indices[valid]]
        out[~valid] = None
        return out


@dataclass
class TrainData:
    """Everything a model may see at fit time, in internal indices.

    user_items
        CSR matrix (n_users x n_items) of float32 training weights.
    users, items
        Id maps. The item map covers the whole catalogue: train items first, then items seen
        only in test or only in the book metadata (cold items), so cold items have indices.
    books
        Metadata aligned with `items` (row i describes item i), or None without metadata.
    cold
        Boolean mask over items: True where the item has fewer than `cold_threshold` train
        interactions.
    """

    user_items: sp.csr_matrix
    users: IdMap
    items: IdMap
    books: pl.DataFrame | None
    cold: np.ndarray

    @property
    def n_users(self) -> int:
        return self.user_items.shape[0]

    @property
    def n_items(self) -> int:
        return self.user_items.shape[1]

    @classmethod
    def from_split(cls, split: Split) -> TrainData:
        """Index `split.train` and the catalogue (train, test and book ids)."""
        users = IdMap.from_values(split.train[USER_ID])
        book_ids = [split.books[ITEM_ID]] if split.books is not None else []
        items = IdMap.from_values(split.train[ITEM_ID], split.test[ITEM_ID], *book_ids)

        rows = users.index(split.train[USER_ID])
        cols = items.index(split.train[ITEM_ID])
        weights = split.train[WEIGHT].cast(pl.Float32).to_numpy()
        user_items = sp.csr_matrix(
            (weights, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32
        )
        user_items.sum_duplicates()

        cold = np.zeros(len(items), dtype=bool)
        cold[items.index(split.cold_items)] = True

        books = None
        if split.books is not None:
            order = pl.DataFrame({ITEM_ID: items.ids.tolist()}, schema={ITEM_ID: pl.Utf8})
            books = order.join(split.books.unique(ITEM_ID, keep="first"), on=ITEM_ID, how="left")
        return cls(user_items=user_items, users=users, items=items, books=books, cold=cold)

    def test_matrix(self, test: pl.DataFrame) -> sp.csr_matrix:
        """Binary CSR (n_users x n_items) of test pairs; pairs with unknown ids are skipped."""
        rows = self.users.index(test[USER_ID])
        cols = self.items.index(test[ITEM_ID])
        known = (rows >= 0) & (cols >= 0)
        matrix = sp.csr_matrix(
            (np.ones(known.sum(), dtype=np.float32), (rows[known], cols[known])),
            shape=(self.n_users, self.n_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix
