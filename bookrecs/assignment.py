"""Deterministic assignment of users to experiment variants by salted SHA-256 hashing.

The service and the pilot readout both call these functions, so a user lands in the same
variant in every process, on every machine and after every restart. Each experiment uses its
own salt, which makes the assignments of two experiments statistically independent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

from bookrecs.exceptions import ConfigError

DEFAULT_BUCKETS = 10_000
_WEIGHT_TOLERANCE = 1e-6


def bucket(user_id: str, salt: str, n_buckets: int = DEFAULT_BUCKETS) -> int:
    """Map a user to one of `n_buckets` buckets, uniformly and deterministically.

    The bucket is ``int(sha256(salt + ":" + user_id)[:8]) mod n_buckets``. Using the first
    64 bits of the digest keeps the modulo bias below ``n_buckets / 2**64``.

    Parameters
    ----------
    user_id : str
        External user id (or its hash, as the impression log stores it).
    salt : str
        Experiment salt. Different salts give independent assignments.
    n_buckets : int, default 10_000
        Number of buckets. Variant shares resolve to multiples of ``1 / n_buckets``.

    Returns
    -------
    int
        Bucket in ``[0, n_buckets)``.
    """
    _check_text("user_id", user_id)
    _check_text("salt", salt)
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 1:
        raise ConfigError(f"n_buckets must be a positive integer, got {n_buckets!r}")
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_buckets


def assign_variant(
    user_id: str,
    salt: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
) -> str:
    """Return the variant of a user for the experiment named by `salt`.

    Buckets ``[0, 10_000)`` are split into consecutive ranges whose sizes are proportional to
    `weights`, in the order of `variants`. Changing the order or the weights therefore moves
    users between variants, so both must stay fixed for the life of an experiment.

    Parameters
    ----------
    user_id : str
        External user id (or its hash).
    salt : str
        Experiment salt.
    variants : Sequence[str]
        Distinct variant names, for example ``("control", "treatment")``.
    weights : Sequence[float] or None
        Share of users per variant, non-negative and summing to 1. Equal shares when None.

    Returns
    -------
    str
        One of `variants`.

    Raises
    ------
    ConfigError
        When the variants are empty or repeated, or the weights do not match them.
    """
    boundaries = variant_boundaries(variants, weights)
    position = bucket(user_id, salt, DEFAULT_BUCKETS)
    for variant, upper in zip(variants, boundaries, strict=True):
        if position < upper:
            return variant
    # Unreachable: the last boundary equals DEFAULT_BUCKETS, which every bucket is below.
    return variants[-1]


def assign_variants(
    user_ids: Iterable[str],
    salt: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
) -> list[str]:
    """Return `assign_variant` for many users, validating the variants and weights once."""
    boundaries = variant_boundaries(variants, weights)
    _check_text("salt", salt)
    assigned = []
    for user_id in user_ids:
        position = bucket(user_id, salt, DEFAULT_BUCKETS)
        for variant, upper in zip(variants, boundaries, strict=True):
            if position < upper:
                assigned.append(variant)
                break
    return assigned


def variant_boundaries(
    variants: Sequence[str], weights: Sequence[float] | None = None
) -> list[int]:
    """Return the exclusive upper bucket of each variant, in the order of `variants`."""
    if isinstance(variants, str) or len(variants) == 0:
        raise ConfigError(
            f"variants must be a non-empty sequence of names, got {variants!r}; "
            "pass for example ('control', 'treatment')"
        )
    if len(set(variants)) != len(variants):
        raise ConfigError(f"variants must be distinct, got {list(variants)!r}")
    for name in variants:
        _check_text("variant name", name)

    if weights is None:
        shares = [1.0 / len(variants)] * len(variants)
    else:
        shares = [float(weight) for weight in weights]
        if len(shares) != len(variants):
            raise ConfigError(
                f"got {len(shares)} weights for {len(variants)} variants {list(variants)!r}; "
                "pass one weight per variant"
            )
        if any(not math.isfinite(share) or share < 0 for share in shares):
            raise ConfigError(f"weights must be finite and non-negative, got {shares!r}")
        if abs(sum(shares) - 1.0) > _WEIGHT_TOLERANCE:
            raise ConfigError(f"weights must sum to 1, got {shares!r} (sum {sum(shares):.6g})")

    boundaries = []
    cumulative = 0.0
    for share in shares:
        cumulative += share
        boundaries.append(min(DEFAULT_BUCKETS, round(cumulative * DEFAULT_BUCKETS)))
    boundaries[-1] = DEFAULT_BUCKETS
    return boundaries


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or value == "":
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
