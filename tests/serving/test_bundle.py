"""Serving bundle export and load on the tiny catalogue of conftest.py."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from bookrecs.exceptions import BookRecsError, ModelLoadError
from bookrecs.models import build_model
from bookrecs.serving_bundle import bundle_fingerprint, export_bundle, load_bundle


def test_round_trip(bundles):
    bundle = load_bundle(bundles["run1"], version="bookrecs:v1")
    assert bundle.version == "bookrecs:v1"
    assert bundle.run_id == "run1"
    assert bundle.meta["model"] == "popular"
    assert bundle.top_items.shape == (6, 6)
    ids = bundle.items.ids
    assert [ids[i] for i in bundle.popular[:3]] == ["b01", "b02", "b03"]
    assert bundle.popular_scores[0] == pytest.approx(1.0)
    # cold books, newest first; b11 has no year so it comes last
    assert [ids[i] for i in bundle.new] == ["b10", "b09", "b12", "b11"]
    assert sorted(ids[bundle.seen(bundle.user_index["u2"])]) == ["b01", "b02", "b03", "b04"]
    assert bundle.titles[bundle.item_index["b05"]] == "Gamma"
    assert bundle.facts.shelves[bundle.item_index["b01"]] == {"fantasy", "magic", "ya"}


def test_precomputed_lists_skip_seen(bundles):
    bundle = load_bundle(bundles["run2"])
    for user in range(len(bundle.users)):
        top = bundle.top_items[user]
        assert not set(top[top >= 0]) & set(bundle.seen(user))


def test_similar_lists_precomputed(bundles):
    knn = load_bundle(bundles["run2"])
    assert knn.similar_items.shape == (12, 12)
    b01 = knn.item_index["b01"]
    assert b01 not in knn.similar_items[b01]
    assert knn.items.ids[knn.similar_items[b01][0]] == "b02"
    assert load_bundle(bundles["run1"]).similar_items is None  # popular has no neighbours


def test_export_rejects_non_empty_dest(tmp_path, train_data):
    model = build_model("popular", seed=1).fit(train_data)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(BookRecsError, match="not empty"):
        export_bundle(tmp_path / "taken", model, train_data, run_id="r", metrics={})


def test_corrupt_state_fails_load(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    (copy / "model" / "state.npz").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="copy"):
        load_bundle(copy)


def test_missing_lists_fail_load(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    (copy / "lists.npz").unlink()
    with pytest.raises(ModelLoadError, match="lists.npz"):
        load_bundle(copy)


def test_inconsistent_lists_fail_load(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    with np.load(copy / "lists.npz") as lists:
        arrays = dict(lists)
    arrays["popular"] = np.array([99], dtype=np.int32)
    np.savez(copy / "lists.npz", **arrays)
    with pytest.raises(ModelLoadError, match="popular"):
        load_bundle(copy)


def test_fingerprint_notices_removal(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    before = bundle_fingerprint(copy)
    (copy / "model" / "state.npz").unlink()
    assert bundle_fingerprint(copy) != before


def test_truncated_lists_fail_load(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    lists = copy / "lists.npz"
    lists.write_bytes(lists.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="lists.npz is corrupt or truncated"):
        load_bundle(copy)


def test_garbage_lists_message_is_safe(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    (copy / "lists.npz").write_bytes(b"garbage" * 100)
    with pytest.raises(ModelLoadError) as raised:
        load_bundle(copy)
    assert "allow_pickle" not in str(raised.value)
    assert "re-export" in str(raised.value)


def test_garbage_state_message_is_safe(tmp_path, bundles):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    (copy / "model" / "state.npz").write_bytes(b"garbage" * 100)
    with pytest.raises(ModelLoadError) as raised:
        load_bundle(copy)
    message = str(raised.value)
    assert "allow_pickle" not in message
    assert "state.npz is corrupt or truncated" in message
    assert "re-run training or promote another version" in message
