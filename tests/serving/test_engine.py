"""The recommendation engine in process: list rules, the fallback chain and hot swaps."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from bentos.engine import BlockingCallNeeded, BookNotFoundError, RecommendationEngine
from bentos.settings import ServiceSettings
from bookrecs.availability import AvailabilityTable
from bookrecs.exceptions import ConfigError
from bookrecs.impressions import read_impressions

from .conftest import TRAIN


def ids(served) -> list[str]:
    return [item.item_id for item in served.items]


@pytest.fixture
def engine(tmp_path, bundles):
    settings = ServiceSettings(
        bundle=bundles["run2"],
        previous_bundle=bundles["run1"],
        impressions=tmp_path / "impressions.sqlite",
        score_timeout_ms=100,
    )
    engine = RecommendationEngine(settings)
    yield engine
    engine.close()


def test_exactly_k_without_seen_or_duplicates(engine):
    for user, seen in TRAIN.items():
        for k in (1, 3, 12 - len(seen)):
            served = engine.recommend(user, k)
            assert len(served.items) == k, (user, k)
            assert len(set(ids(served))) == k
            assert not set(ids(served)) & set(seen)
            assert served.source == "model"


def test_model_list_filled_from_popular(engine):
    served = engine.recommend("u6", 11)
    assert len(served.items) == 11
    assert "b03" not in ids(served)


def test_unavailable_never_returned(engine):
    engine.availability.set_unavailable(["b06", "b01"])
    for user in TRAIN:
        assert not {"b06", "b01"} & set(ids(engine.recommend(user, 5)))
    assert "b01" not in ids(engine.recommend("stranger", 5))


def test_availability_file_updates_while_running(tmp_path, bundles):
    path = tmp_path / "availability.csv"
    path.write_text("item_id,available\nb01,true\n")
    settings = ServiceSettings(bundle=bundles["run1"], availability=path, log_impressions=False)
    engine = RecommendationEngine(settings)
    assert ids(engine.recommend("stranger", 1)) == ["b01"]
    path.write_text("item_id,available\nb01,false\n")
    engine.availability._mtime = None  # the file may change within one mtime tick
    engine.refresh()
    assert ids(engine.recommend("stranger", 1)) == ["b02"]
    engine.close()


def test_unknown_user_gets_popular(engine):
    served = engine.recommend("stranger", 4)
    assert served.source == "popular"
    assert ids(served) == ["b01", "b02", "b03", "b04"]
    assert [item.reason for item in served.items] == ["popular now"] * 4
    assert engine.counters.snapshot()["fallback_unknown_user"] == 1


def test_broken_model_falls_back_to_previous(engine):
    current = engine.slots.current

    def broken(users):
        raise RuntimeError("corrupt factors")

    current.model.score = broken
    served = engine.recommend("u1", 7)  # longer than the precomputed list: needs scoring
    assert served.source == "previous_model"
    assert served.model_version == str(engine.settings.previous_bundle)
    assert len(served.items) == 7
    assert not set(ids(served)) & set(TRAIN["u1"])
    assert engine.counters.snapshot()["fallback_error"] == 1


def test_slow_model_times_out(engine):
    def slow(users):
        time.sleep(1.0)
        return np.zeros((len(users), 12), dtype=np.float32)

    engine.slots.current.model.score = slow
    started = time.perf_counter()
    served = engine.recommend("u1", 7)
    assert time.perf_counter() - started < 0.8
    assert served.source == "previous_model"
    assert engine.counters.snapshot()["fallback_timeout"] == 1


def test_both_models_broken_gives_popular(engine):
    def broken(users):
        raise RuntimeError("broken")

    engine.slots.current.model.score = broken
    engine.slots.previous.model.score = broken
    served = engine.recommend("u1", 7)
    assert served.source == "popular"
    assert len(served.items) == 7
    assert not set(ids(served)) & set(TRAIN["u1"])


def test_corrupt_artifact_on_disk(tmp_path, bundles):
    current = shutil.copytree(bundles["run2"], tmp_path / "current")
    settings = ServiceSettings(
        bundle=current, previous_bundle=bundles["run1"], log_impressions=False
    )
    engine = RecommendationEngine(settings)
    assert engine.recommend("u1", 3).source == "model"

    (current / "model" / "state.npz").write_bytes(b"not an npz file")
    assert engine.refresh()
    served = engine.recommend("u1", 3)
    assert served.source == "previous_model"
    assert len(served.items) == 3
    info = engine.info()
    assert "current" in info["load_errors"]
    assert info["counters"]["model_load_failures"] == 1
    engine.close()


def test_truncated_lists_at_start(tmp_path, bundles):
    current = shutil.copytree(bundles["run2"], tmp_path / "current")
    lists = current / "lists.npz"
    lists.write_bytes(lists.read_bytes()[:1000])
    settings = ServiceSettings(
        bundle=current, previous_bundle=bundles["run1"], log_impressions=False
    )
    engine = RecommendationEngine(settings)
    served = engine.recommend("u1", 3)
    assert served.source == "previous_model"
    assert len(served.items) == 3
    info = engine.info()
    assert "lists.npz is corrupt" in info["load_errors"]["current"]
    assert info["current"]["loaded"] is False
    engine.close()


def test_truncated_lists_while_running(tmp_path, bundles):
    current = shutil.copytree(bundles["run2"], tmp_path / "current")
    settings = ServiceSettings(
        bundle=current, previous_bundle=bundles["run1"], log_impressions=False
    )
    engine = RecommendationEngine(settings)
    lists = current / "lists.npz"
    lists.write_bytes(lists.read_bytes()[:1000])
    assert engine.refresh()
    # The failure is recorded once: an unchanged broken bundle is not reloaded every poll.
    assert not engine.refresh()
    assert engine.recommend("u1", 3).source == "previous_model"
    info = engine.info()
    assert "lists.npz" in info["load_errors"]["current"]
    assert info["counters"]["model_load_failures"] == 1
    assert "refresh_errors" not in info["counters"]
    engine.close()


def test_watcher_backs_off(tmp_path, bundles, monkeypatch, caplog):
    settings = ServiceSettings(bundle=bundles["run1"], log_impressions=False, poll_seconds=0.01)
    engine = RecommendationEngine(settings)
    calls = []

    def failing_refresh():
        calls.append(time.monotonic())
        raise RuntimeError("disk gone")

    monkeypatch.setattr(engine, "refresh", failing_refresh)
    with caplog.at_level("WARNING", logger="bookrecs.serving"):
        engine.start()
        time.sleep(0.5)
        engine.close()
    # Delays of 0.02, 0.04, 0.08, 0.16 and 0.32 s fit into 0.5 s: at most 6 calls, not 50.
    assert 2 <= len(calls) <= 6
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    assert engine.info()["counters"]["refresh_errors"] == len(calls)


def test_no_loadable_model_still_answers(tmp_path, bundles):
    current = shutil.copytree(bundles["run2"], tmp_path / "current")
    settings = ServiceSettings(bundle=current, log_impressions=False)
    engine = RecommendationEngine(settings)
    shutil.rmtree(current)
    engine.refresh()
    served = engine.recommend("u1", 3)
    assert served.source == "popular"
    assert ids(served) == ["b06", "b07", "b08"]
    assert engine.ready()
    engine.close()


def test_nothing_loaded_is_not_ready(tmp_path):
    settings = ServiceSettings(bundle=tmp_path / "absent", log_impressions=False)
    engine = RecommendationEngine(settings)
    assert not engine.ready()
    served = engine.recommend("u1", 3)
    assert served.items == []
    assert served.source == "popular"
    engine.close()


def test_book_page_puts_similar_first(engine):
    served = engine.recommend("u5", 3, placement="book", book_id="b09")
    # b09 shares series and author with b01/b02; u5 has read b01.
    assert ids(served)[0] == "b02"
    assert served.items[0].reason == "same series: S1"
    assert "b09" not in ids(served)
    assert "b01" not in ids(served)


def test_short_reasons_setting(tmp_path, bundles):
    settings = ServiceSettings(
        bundle=bundles["run2"], detailed_reasons=False, log_impressions=False
    )
    engine = RecommendationEngine(settings)
    served = engine.recommend("u5", 3, placement="book", book_id="b09")
    assert served.items[0].reason == "same series"
    engine.close()


def test_similar_for_cold_book(engine):
    served = engine.similar("b09", 3)
    assert ids(served)[:2] == ["b01", "b02"]
    assert served.source == "model"
    assert served.variant == ""


def test_similar_unknown_book(engine):
    with pytest.raises(BookNotFoundError, match="nope"):
        engine.similar("nope", 3)


def test_popular_variant_skips_model(tmp_path, bundles):
    settings = ServiceSettings(
        bundle=bundles["run2"],
        variants=("control", "treatment"),
        popular_variants=("control", "treatment"),
        log_impressions=False,
    )
    engine = RecommendationEngine(settings)
    served = engine.recommend("u1", 3)
    assert served.source == "popular"
    assert ids(served) == ["b06", "b07", "b08"]
    engine.close()


def test_impressions_logged(engine, tmp_path):
    served = engine.recommend("u2", 5)
    engine.close()
    table = read_impressions(tmp_path / "impressions.sqlite")
    assert table.height == 1
    row = table.row(0, named=True)
    assert row["request_id"] == served.request_id
    assert row["source"] == "model"
    assert row["k"] == 5
    assert row["user_hash"] != "u2"
    items = json.loads(row["items"])
    assert [item["position"] for item in items] == [1, 2, 3, 4, 5]
    cold = {"b09", "b10", "b11", "b12"}
    assert row["cold_items"] == len(cold & {item["item_id"] for item in items})


def test_inline_needs_thread_for_model_calls(engine):
    assert len(engine.recommend("u1", 3, inline=True).items) == 3
    with pytest.raises(BlockingCallNeeded):
        engine.recommend("u1", 7, inline=True)  # beyond the precomputed list
    assert engine.counters.snapshot()["requests_recommend"] == 1
    # similar books come from the lists precomputed at export, so no model call
    assert len(engine.similar("b05", 3, inline=True).items) == 3


def test_variant_is_stable(engine):
    assert engine.recommend("u1", 1).variant == engine.recommend("u1", 1).variant


def test_settings_from_env():
    settings = ServiceSettings.from_env(
        {"BOOKRECS_VARIANTS": "a, b", "BOOKRECS_RATE_LIMIT": "0", "OTHER": "x"}
    )
    assert settings.variants == ("a", "b")
    assert settings.rate_limit == 0


def test_settings_reject_bad_env():
    with pytest.raises(ConfigError, match="score_timeout_ms"):
        ServiceSettings.from_env({"BOOKRECS_SCORE_TIMEOUT_MS": "-1"})
    with pytest.raises(ConfigError, match="popular_variants"):
        ServiceSettings.from_env({"BOOKRECS_POPULAR_VARIANTS": "other"})


def test_shared_availability_table(bundles):
    table = AvailabilityTable()
    settings = ServiceSettings(bundle=bundles["run1"], log_impressions=False)
    engine = RecommendationEngine(settings, availability=table)
    table.set_unavailable(["b01"])
    assert ids(engine.recommend("stranger", 1)) == ["b02"]
    engine.close()


def test_similar_same_for_every_k(tmp_path, bundles):
    copy = shutil.copytree(bundles["run2"], tmp_path / "copy")
    with np.load(copy / "lists.npz") as lists:
        arrays = dict(lists)
    index = {f"b{i:02d}": i - 1 for i in range(1, 13)}
    # b01's model neighbours are all books u1 has read (b01..b05), so none is usable for u1.
    row = [index[b] for b in ["b02", "b03", "b04", "b05"] * 3]
    arrays["similar_items"][index["b01"]] = row
    np.savez(copy / "lists.npz", **arrays)
    settings = ServiceSettings(bundle=copy, log_impressions=False)
    engine = RecommendationEngine(settings)
    assert engine.slots.current.item_index == index

    for k in (1, 3, 7):
        served = engine.similar("b01", k, user_id="u1")
        assert served.source == "model", k
        assert ids(served)[0] == "b09", k
        assert served.items[0].reason.startswith("same series"), k
        assert len(served.items) == k
        assert not {"b01", "b02", "b03", "b04", "b05"} & set(ids(served))
    engine.close()
