"""Model store and serving pointer: save, promote, roll back, and hot swaps under load."""

from __future__ import annotations

import shutil
import threading

import pytest

from bentos import store
from bentos.engine import RecommendationEngine
from bentos.settings import ServiceSettings


@pytest.fixture(scope="module")
def tags(bundles) -> dict[str, str]:
    return {run: store.save_model(path, {"note": "test"}) for run, path in bundles.items()}


def test_save_keeps_labels_and_metadata(tags):
    rows = {row["tag"]: row for row in store.list_models()}
    row = rows[tags["run2"]]
    assert row["run_id"] == "run2"
    assert row["model"] == "itemknn"
    assert row["metrics"] == {"ndcg@10": 0.1}
    assert store.find_tag("run1") == tags["run1"]


def test_save_rejects_corrupt_bundle(tmp_path):
    with pytest.raises(Exception, match="cannot load serving bundle"):
        store.save_model(tmp_path, {})


def test_promote_and_rollback(tmp_path, tags):
    pointer = tmp_path / "pointer.json"
    store.promote(run_id="run1", pointer=pointer)
    state = store.promote(tags["run2"], pointer=pointer)
    assert state["current"] == tags["run2"]
    assert state["previous"] == tags["run1"]

    state = store.rollback(pointer)
    assert state["current"] == tags["run1"]
    assert state["previous"] is None
    with pytest.raises(store.StoreError, match="nothing to roll back"):
        store.rollback(pointer)


def test_promote_unknown_run(tmp_path, tags):
    with pytest.raises(store.StoreError, match="no stored model has run id 'nope'"):
        store.promote(run_id="nope", pointer=tmp_path / "pointer.json")


def test_cli_commands(tmp_path, tags, capsys):
    pointer = str(tmp_path / "pointer.json")
    assert store.main(["--pointer", pointer, "promote", "--run", "run1"]) == 0
    assert store.main(["--pointer", pointer, "promote", "--tag", tags["run2"]]) == 0
    assert store.main(["--pointer", pointer, "rollback"]) == 0
    out = capsys.readouterr().out
    assert f"current={tags['run1']}" in out.splitlines()[-1]
    assert store.main(["--pointer", pointer, "promote", "--run", "missing"]) == 1
    assert "no stored model" in capsys.readouterr().err


def test_engine_follows_pointer(tmp_path, tags):
    pointer = tmp_path / "pointer.json"
    store.promote(tags["run1"], pointer=pointer)
    store.promote(tags["run2"], pointer=pointer)
    settings = ServiceSettings(serving_pointer=pointer, log_impressions=False)
    engine = RecommendationEngine(settings)
    served = engine.recommend("u1", 3)
    assert served.model_version == tags["run2"]
    assert engine.info()["previous"]["tag"] == tags["run1"]

    store.rollback(pointer)
    assert engine.refresh()
    served = engine.recommend("u1", 3)
    assert served.model_version == tags["run1"]
    assert served.source == "model"
    engine.close()


def test_rollback_under_load_loses_nothing(tmp_path, tags):
    pointer = tmp_path / "pointer.json"
    store.promote(tags["run1"], pointer=pointer)
    store.promote(tags["run2"], pointer=pointer)
    settings = ServiceSettings(serving_pointer=pointer, log_impressions=False, poll_seconds=0.01)
    engine = RecommendationEngine(settings)
    engine.start()
    failures: list[str] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                served = engine.recommend("u1", 5)
            except Exception as error:  # noqa: BLE001 - any failure fails the test below
                failures.append(repr(error))
                continue
            versions.add(served.model_version)
            if len(served.items) != 5 or served.source != "model":
                failures.append(f"{served.source}: {len(served.items)} items")

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        store.rollback(pointer)
        engine.refresh()
        store.promote(tags["run2"], pointer=pointer)
        engine.refresh()
    stop.set()
    for thread in threads:
        thread.join()
    engine.close()

    assert failures == []
    assert versions == {tags["run1"], tags["run2"]}
    assert engine.counters.snapshot()["requests_recommend"] > 0


def test_promote_truncated_version(tmp_path, bundles, capsys):
    copy = shutil.copytree(bundles["run1"], tmp_path / "copy")
    tag = store.save_model(copy, {})
    lists = store.model_path(tag) / "lists.npz"
    lists.write_bytes(lists.read_bytes()[:1000])
    pointer = str(tmp_path / "pointer.json")
    assert store.main(["--pointer", pointer, "promote", "--tag", tag]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: not promoting {tag}")
    assert "Traceback" not in err
    assert store.read_pointer(pointer)["current"] is None


def test_promote_resolves_alias(tmp_path, bundles):
    pointer = tmp_path / "pointer.json"
    newest = store.save_model(bundles["run2"], {})
    state = store.promote("latest", pointer=pointer)
    assert state["current"] == newest
    assert state["history"] == [newest]
    assert newest in state["paths"]


def test_promote_lowercases_version(tmp_path, tags):
    pointer = tmp_path / "pointer.json"
    state = store.promote(tags["run1"].upper(), pointer=pointer)
    assert state["current"] == tags["run1"]


def test_promote_current_again_rejected(tmp_path, tags):
    pointer = tmp_path / "pointer.json"
    store.promote(tags["run1"], pointer=pointer)
    store.promote(tags["run2"], pointer=pointer)
    with pytest.raises(store.StoreError, match="already the current version"):
        store.promote(tags["run2"], pointer=pointer)
    state = store.read_pointer(pointer)
    assert state["history"] == [tags["run1"], tags["run2"]]


@pytest.mark.parametrize("tag", ["../../etc", "bookrecs:", "a:b:c", "other:abc"])
def test_cli_invalid_tag(tmp_path, tags, capsys, tag):
    pointer = str(tmp_path / "pointer.json")
    assert store.main(["--pointer", pointer, "promote", "--tag", tag]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert repr(tag) in err
    assert "Traceback" not in err
