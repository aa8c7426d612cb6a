"""End to end over HTTP: a real `bentoml serve` and a built bento, on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bentos import store
from bookrecs.impressions import read_impressions

from .conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.slow

BENTOML = str(Path(sys.executable).with_name("bentoml"))


@contextmanager
def serving(target: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run `bentoml serve target` on a free 127.0.0.1 port until the block ends."""
    port = free_port()
    full_env = {**os.environ, **env, "BENTOML_DO_NOT_TRACK": "true", "OPENBLAS_NUM_THREADS": "1"}
    with open(log, "w") as output:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited early:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not ready after 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        # The server runs in its own session, so this signals only the processes started here.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def pointer(tmp_path_factory, bundles) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("serving")
    # run3 is a private copy, so corrupting it leaves the other tests' versions intact.
    run3 = shutil.copytree(bundles["run2"], root / "run3")
    tags = {run: store.save_model(path, {}) for run, path in bundles.items()}
    tags["run3"] = store.save_model(run3, {"run_id": "run3"})
    path = root / "pointer.json"
    store.promote(tags["run1"], pointer=path)
    store.promote(tags["run2"], pointer=path)
    return path, tags


def server_env(pointer: Path, impressions: Path) -> dict[str, str]:
    return {
        "BOOKRECS_SERVING_POINTER": str(pointer),
        "BOOKRECS_IMPRESSIONS": str(impressions),
        "BOOKRECS_POLL_SECONDS": "0.2",
        "BOOKRECS_RATE_LIMIT": "0",
    }


def recommend(client: httpx.Client, user: str = "u1", k: int = 5) -> dict:
    response = client.post("/recommend", json={"user_id": user, "k": k})
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(client: httpx.Client, condition, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = recommend(client)
        if condition(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_serve_over_http(tmp_path, pointer):
    pointer_file, tags = pointer
    impressions = tmp_path / "impressions.sqlite"
    ok_responses = 0
    with (
        serving(
            "bentos.service:BookRecs", server_env(pointer_file, impressions), tmp_path / "serve.log"
        ) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        body = recommend(client)
        ok_responses += 1
        assert body["source"] == "model"
        assert body["model_version"] == tags["run2"]
        assert len(body["items"]) == 5
        assert {item["item_id"] for item in body["items"]}.isdisjoint(
            {"b01", "b02", "b03", "b04", "b05"}
        )

        bad = client.post("/recommend", json={"user_id": "u1", "k": 0})
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["loc"] == ["k"]
        assert client.post("/recommend", json={"user_id": "u1", "k": True}).status_code == 400
        unknown = client.post("/similar", json={"book_id": "b09", "K": 2})
        assert unknown.status_code == 400
        assert unknown.json()["detail"][0]["loc"] == ["K"]
        huge = client.post("/recommend", json={"user_id": "u1", "pad": "x" * 100_000})
        assert huge.status_code == 413
        missing = client.post("/similar", json={"book_id": "nope"})
        assert missing.status_code == 404
        assert "nope" in missing.json()["error"]
        similar = client.post("/similar", json={"book_id": "b09", "k": 2})
        ok_responses += 1
        assert [item["item_id"] for item in similar.json()["items"]] == ["b01", "b02"]
        assert client.get("/livez").status_code == 200
        assert client.get("/ops/info").json()["previous"]["tag"] == tags["run1"]

        # Roll back and forward while four threads keep sending requests.
        results: list[tuple[int, int, str]] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=10) as own:
                while not stop.is_set():
                    response = own.post("/recommend", json={"user_id": "u2", "k": 5})
                    if response.is_success:
                        body = response.json()
                        results.append((200, len(body["items"]), body["model_version"]))
                    else:
                        results.append((response.status_code, -1, ""))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(3):
            store.rollback(pointer_file)
            time.sleep(0.6)
            store.promote(tags["run2"], pointer=pointer_file)
            time.sleep(0.6)
        stop.set()
        for thread in threads:
            thread.join()
        ok_responses += len(results)
        assert results
        assert {code for code, _, _ in results} == {200}
        assert {length for _, length, _ in results} == {5}
        assert {version for _, _, version in results} == {tags["run1"], tags["run2"]}

        # Promote run3, then corrupt its artifact while the service runs.
        store.promote(tags["run3"], pointer=pointer_file)
        body = wait_for(client, lambda b: b["model_version"] == tags["run3"])
        assert body["model_version"] == tags["run3"]
        state = store.model_path(tags["run3"]) / "model" / "state.npz"
        state.write_bytes(b"corrupt")
        body = wait_for(client, lambda b: b["source"] == "previous_model")
        assert body["source"] == "previous_model"
        assert body["model_version"] == tags["run2"]
        assert len(body["items"]) == 5
        state.unlink()
        body = wait_for(client, lambda b: b["source"] == "previous_model")
        assert body["source"] == "previous_model"
        info = client.post("/info", json={}).json()
        assert "current" in info["load_errors"]
        assert info["counters"]["model_load_failures"] >= 1
        ok_responses = info["counters"]["requests_recommend"] + info["counters"]["requests_similar"]

    log = (tmp_path / "serve.log").read_text()
    assert "Exception on /recommend" not in log
    assert "Traceback" not in log
    assert "rejected invalid input on /similar with 400" in log
    # The bookrecs loggers log at INFO under `bentoml serve`.
    assert "serving current=" in log
    assert "service stopped; impression log flushed" in log

    # SIGTERM runs the shutdown hook, which writes every queued impression.
    table = read_impressions(impressions)
    assert table.height == ok_responses
    assert table["request_id"].n_unique() == table.height


def test_built_bento(tmp_path, pointer):
    pointer_file, tags = pointer
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
    build = subprocess.run(
        [BENTOML, "build", "-f", "bentos/bentofile.yaml", "-o", "tag", "."],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("bookrecs:")

    if store.read_pointer(pointer_file)["current"] != tags["run2"]:
        store.promote(tags["run2"], pointer=pointer_file)  # run3 may be corrupt by now
    impressions = tmp_path / "impressions.sqlite"
    with serving(tag, server_env(pointer_file, impressions), tmp_path / "bento.log") as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            body = recommend(client, "u3", 4)
            assert body["source"] == "model"
            assert body["model_version"] == tags["run2"]
            assert len(body["items"]) == 4
            stranger = recommend(client, "stranger", 3)
            assert stranger["source"] == "popular"
            assert [item["item_id"] for item in stranger["items"]] == ["b01", "b02", "b03"]


def test_truncated_current_at_start(tmp_path, bundles):
    broken = store.save_model(shutil.copytree(bundles["run2"], tmp_path / "broken"), {})
    pointer_file = tmp_path / "pointer.json"
    previous = store.save_model(bundles["run1"], {})
    store.promote(previous, pointer=pointer_file)
    store.promote(broken, pointer=pointer_file)
    lists = store.model_path(broken) / "lists.npz"
    lists.write_bytes(lists.read_bytes()[:1000])

    env = server_env(pointer_file, tmp_path / "impressions.sqlite")
    log = tmp_path / "serve.log"
    with serving("bentos.service:BookRecs", env, log) as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            body = recommend(client, "u1", 3)
            assert body["source"] == "previous_model"
            assert body["model_version"] == previous
            assert len(body["items"]) == 3
            info = client.get("/ops/info").json()
            assert info["current"] == {"tag": broken, "loaded": False}
            assert "lists.npz is corrupt or truncated" in info["load_errors"]["current"]
            time.sleep(1.0)  # five polls: the broken version is not reloaded or logged again

    text = log.read_text()
    assert "Traceback" not in text
    assert text.count(f"cannot serve current version {broken}") == 1
