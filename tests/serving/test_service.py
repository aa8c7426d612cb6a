"""The BentoML service class in process and its ASGI app (validation, 404, 429, probes)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from bentos.ratelimit import TokenBuckets


@pytest.fixture
def service_module(monkeypatch, tmp_path, bundles):
    monkeypatch.setenv("BOOKRECS_BUNDLE", str(bundles["run2"]))
    monkeypatch.setenv("BOOKRECS_PREVIOUS_BUNDLE", str(bundles["run1"]))
    monkeypatch.setenv("BOOKRECS_IMPRESSIONS", str(tmp_path / "impressions.sqlite"))
    monkeypatch.setenv("BOOKRECS_RATE_LIMIT", "1")
    monkeypatch.setenv("BOOKRECS_RATE_BURST", "3")
    monkeypatch.setenv("BOOKRECS_RATE_KEY_HEADER", "x-client-id")
    import bentos.service

    # Settings are read at import, as `bentoml serve` does in a fresh process.
    return importlib.reload(bentos.service)


def test_class_in_process(service_module):
    service = service_module.BookRecs()
    response = asyncio.run(service.recommend(user_id="u1", k=4))
    assert response.source == "model"
    assert len(response.items) == 4
    assert {item.item_id for item in response.items}.isdisjoint({"b01", "b02", "b03", "b04"})
    # k=7 exceeds the precomputed lists, so the model scores on a worker thread
    longer = asyncio.run(service.recommend(user_id="u1", k=7))
    assert len(longer.items) == 7
    similar = asyncio.run(service.similar(book_id="b09", k=2))
    assert [item.item_id for item in similar.items] == ["b01", "b02"]
    info = service.info()
    assert info.ready
    assert info.counters["requests_recommend"] == 2
    service.close()


def test_unknown_book_is_404(service_module):
    service = service_module.BookRecs()
    response = asyncio.run(service.similar(book_id="missing", k=2))
    assert response.status_code == 404
    assert b"missing" in response.body
    service.close()


def test_asgi_app(service_module, caplog):
    # One app per process: BentoML registers its Prometheus metrics once per app.
    with TestClient(service_module.BookRecs.to_asgi()) as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/livez").status_code == 200
        with caplog.at_level(logging.INFO):
            check_validation(client)
            check_strict_input(client)
        check_validation_logs(caplog.records)
        check_body_limit(client)
        check_rate_limit(client)
        spec = client.get("/docs.json").json()
        assert {"/recommend", "/similar", "/info"} <= set(spec["paths"])
        info = client.get("/ops/info").json()
        assert info["current"]["run_id"] == "run2"
        assert info["rate_limited"] == 2


def check_validation(client: TestClient) -> None:
    def post(body: dict, client_id: str) -> dict:
        response = client.post("/recommend", json=body, headers={"x-client-id": client_id})
        assert response.status_code == 400, body
        return response.json()

    assert post({"user_id": "u1", "k": 101}, "a")["detail"][0]["loc"] == ["k"]
    assert post({"k": 3}, "b")["detail"][0]["loc"] == ["user_id"]
    assert post({"user_id": "u1", "k": "ten"}, "c")["detail"][0]["loc"] == ["k"]
    assert post({"user_id": "u1", "placement": "shelf"}, "d")["detail"][0]["loc"] == ["placement"]


def check_strict_input(client: TestClient) -> None:
    cases = [
        ("/recommend", {"user_id": "u1", "k": True}, "k"),
        ("/recommend", {"user_id": "u1", "k": "5"}, "k"),
        ("/recommend", {"user_id": "u1", "K": 5}, "K"),
        ("/similar", {"book_id": "b01", "k": False}, "k"),
        ("/similar", {"book_id": "b01", "limit": 3}, "limit"),
    ]
    for number, (path, body, field) in enumerate(cases):
        response = client.post(path, json=body, headers={"x-client-id": f"strict{number}"})
        assert response.status_code == 400, body
        assert response.json()["detail"][0]["loc"] == [field], body


def check_validation_logs(records: list[logging.LogRecord]) -> None:
    http = [r for r in records if r.name == "bentoml._internal.server.http_app"]
    assert len(http) == 9
    for record in http:
        assert record.levelno == logging.INFO
        assert record.exc_info is None
        assert "rejected invalid input on /" in record.getMessage()
        assert "shelf" not in record.getMessage()


def check_body_limit(client: TestClient) -> None:
    big = {"user_id": "u1", "k": 3, "padding": "x" * 70_000}
    response = client.post("/recommend", json=big, headers={"x-client-id": "big"})
    assert response.status_code == 413
    assert "65536 bytes" in response.json()["error"]

    def chunks():
        yield b'{"user_id": "u1", "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    streamed = client.post(
        "/similar",
        content=chunks(),
        headers={"x-client-id": "stream", "content-type": "application/json"},
    )
    assert streamed.status_code == 413
    small = client.post("/recommend", json={"user_id": "u1", "k": 3}, headers={"x-client-id": "ok"})
    assert small.status_code == 200
    assert len(small.json()["items"]) == 3


def check_rate_limit(client: TestClient) -> None:
    headers = {"x-client-id": "hasty"}
    codes = [
        client.post("/recommend", json={"user_id": "u1", "k": 2}, headers=headers).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = client.post("/similar", json={"book_id": "b01"}, headers=headers)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit" in limited.json()["error"]
    other = client.post("/recommend", json={"user_id": "u1"}, headers={"x-client-id": "calm"})
    assert other.status_code == 200
    assert client.get("/readyz").status_code == 200


def test_token_bucket_refills():
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.rejected == 1


def test_token_bucket_disabled():
    buckets = TokenBuckets(rate=0.0, burst=1)
    assert all(buckets.take("a") == 0.0 for _ in range(100))


def test_service_import_stays_light(bundles):
    code = (
        "import sys, bentos.service; "
        "print(sorted(m for m in ('evidently', 'metaflow', 'lightfm') if m in sys.modules))"
    )
    env = {**os.environ, "BOOKRECS_BUNDLE": str(bundles["run1"]), "BOOKRECS_LOG_IMPRESSIONS": "0"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
