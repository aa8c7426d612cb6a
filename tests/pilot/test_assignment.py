"""Tests for salted SHA-256 assignment: stable, uniform and independent between salts."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bookrecs.assignment import assign_variant, assign_variants, bucket
from bookrecs.exceptions import ConfigError

USERS = [f"user-{index}" for index in range(20_000)]
VARIANTS = ("control", "treatment")
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bucket_known_value():
    digest = hashlib.sha256(b"salt-1:user-42").digest()
    expected = int.from_bytes(digest[:8], "big") % 10_000
    assert bucket("user-42", "salt-1") == expected


def test_assignment_stable_across_processes():
    users = USERS[:200]
    in_process = [assign_variant(user, "pilot-a", VARIANTS) for user in users]
    code = (
        "import json, sys\n"
        "from bookrecs.assignment import assign_variant\n"
        "users = json.loads(sys.stdin.read())\n"
        "print(json.dumps([assign_variant(u, 'pilot-a', ('control', 'treatment')) "
        "for u in users]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(users),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=REPO_ROOT,
    )
    assert json.loads(result.stdout) == in_process


def test_buckets_uniform_chi_square():
    counts = np.bincount([bucket(user, "pilot-a", 20) for user in USERS], minlength=20)
    p_value = stats.chisquare(counts).pvalue
    assert p_value > 0.001


def test_weighted_shares_match():
    weights = (0.2, 0.3, 0.5)
    counts = Counter(assign_variant(user, "pilot-b", ("a", "b", "c"), weights) for user in USERS)
    observed = [counts["a"], counts["b"], counts["c"]]
    expected = [share * len(USERS) for share in weights]
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_salts_independent():
    first = [assign_variant(user, "pilot-a", VARIANTS) for user in USERS]
    second = [assign_variant(user, "pilot-b", VARIANTS) for user in USERS]
    table = np.zeros((2, 2), dtype=int)
    for left, right in zip(first, second, strict=True):
        table[VARIANTS.index(left), VARIANTS.index(right)] += 1
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert first != second


def test_zero_weight_variant_empty():
    assigned = {assign_variant(user, "pilot-a", VARIANTS, (1.0, 0.0)) for user in USERS[:500]}
    assert assigned == {"control"}


@pytest.mark.parametrize(
    ("variants", "weights"),
    [
        ((), None),
        ("control", None),
        (("a", "a"), None),
        (("a", "b"), (0.5,)),
        (("a", "b"), (0.6, 0.6)),
        (("a", "b"), (-0.5, 1.5)),
        (("a", ""), None),
    ],
)
def test_invalid_variants_rejected(variants, weights):
    with pytest.raises(ConfigError):
        assign_variant("user-1", "salt", variants, weights)


def test_empty_salt_rejected():
    with pytest.raises(ConfigError, match="salt"):
        bucket("user-1", "")


def test_bucket_count_validated():
    with pytest.raises(ConfigError, match="n_buckets"):
        bucket("user-1", "salt", 0)


def test_batch_assignment_matches_single():
    weights = (0.3, 0.7)
    single = [assign_variant(user, "pilot-c", VARIANTS, weights) for user in USERS[:1_000]]
    assert assign_variants(USERS[:1_000], "pilot-c", VARIANTS, weights) == single
