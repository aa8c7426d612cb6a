"""Load test of the recommendation service against a bare ASGI app serving the same lists.

    python -m bentos.bench --rates 100,300,500 --seconds 15 --out docs/benchmarks-serving.md

Steps: build a synthetic bundle (or take --bundle) and start `bentoml serve` on a free
127.0.0.1 port. Send open-loop traffic at each rate for --seconds: requests are scheduled at
fixed intervals and latency counts from the scheduled time, so queueing in an overloaded server
shows up instead of being hidden. Then run a closed loop with --concurrency connections to find
the throughput at saturation. The same runs go against a bare Starlette app on uvicorn that returns
the precomputed lists with no fallback chain, filters, reasons or impression log.

The load generator is this process; each server is a separate process. Request mix: 80% known
users on the home page, 10% unknown users, 10% book pages with a book id; k = 10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


# ---- synthetic bundle ------------------------------------------------------------------------
def build_bundle(dest: Path, n_users: int, n_items: int, per_user: int, model: str, seed: int):
    """Export a bundle fitted on random power-law interactions (no real data needed)."""
    import polars as pl
    import scipy.sparse as sp

    from bookrecs.interactions import IdMap, TrainData
    from bookrecs.models import build_model
    from bookrecs.serving_bundle import export_bundle

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    rows = np.repeat(np.arange(n_users), per_user)
    cols = rng.choice(n_items, size=len(rows), p=popularity)
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    cold = np.asarray(matrix.sum(axis=0)).ravel() == 0
    books = pl.DataFrame(
        {
            "item_id": [f"b{i}" for i in range(n_items)],
            "title": [f"Book {i}" for i in range(n_items)],
            "authors": [[f"a{i % (n_items // 3 + 1)}"] for i in range(n_items)],
            "series": [[f"s{i // 4}"] if i % 5 == 0 else [] for i in range(n_items)],
            "tags": [[f"t{(i * 7 + j) % 50}" for j in range(5)] for i in range(n_items)],
            "year": [2000 + i % 20 for i in range(n_items)],
        }
    )
    data = TrainData(
        user_items=matrix,
        users=IdMap(np.array([f"u{i}" for i in range(n_users)], dtype=object)),
        items=IdMap(np.array([f"b{i}" for i in range(n_items)], dtype=object)),
        books=books,
        cold=cold,
    )
    fitted = build_model(model, seed=seed).fit(data)
    return export_bundle(dest, fitted, data, run_id="bench", metrics={}, show_progress=True)


# ---- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(command: list[str], env: dict[str, str], port: int, log: Path):
    """Run a server process in its own session until the block ends; wait for /readyz."""
    with open(log, "w") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.5)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def bare_app(bundle_dir: Path):
    """Build the baseline: a Starlette app returning precomputed lists, nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from bookrecs.serving_bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    ids = bundle.items.ids

    async def recommend(request: Request) -> JSONResponse:
        body = await request.json()
        k = int(body.get("k", 10))
        user = bundle.user_index.get(body["user_id"])
        top = bundle.top_items[user] if user is not None else bundle.popular
        items = [{"item_id": ids[i], "score": 0.0} for i in top[:k].tolist()]
        return JSONResponse({"items": items})

    async def readyz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("\n")

    return Starlette(
        routes=[
            Route("/recommend", recommend, methods=["POST"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


# ---- load generator --------------------------------------------------------------------------
@dataclass
class Result:
    target: str
    mode: str
    offered_rps: float
    sent: int
    ok: int
    errors: int
    seconds: float
    p50: float
    p95: float
    p99: float

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 0.0


def request_bodies(n_users: int, n_items: int, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.8:
            body: dict[str, Any] = {"user_id": f"u{rng.randrange(n_users)}", "k": 10}
        elif roll < 0.9:
            body = {"user_id": f"new{rng.randrange(10**6)}", "k": 10}
        else:
            body = {
                "user_id": f"u{rng.randrange(n_users)}",
                "k": 10,
                "placement": "book",
                "book_id": f"b{rng.randrange(n_items)}",
            }
        bodies.append(json.dumps(body).encode())
    return bodies


async def _post(reader, writer, body: bytes) -> int:
    writer.write(
        b"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def _run(
    port: int,
    bodies: list[bytes],
    rate: float | None,
    seconds: float,
    connections: int,
    timeout: float,
    max_requests: int,
) -> tuple[list[float], int, int, float]:
    """Send `bodies` open loop at `rate` (or closed loop when None) for at most `seconds`."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    started = time.perf_counter()
    end = started + seconds

    async def worker() -> None:
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                if rate is None:
                    if time.perf_counter() >= end or sent >= max_requests:
                        return
                    body, scheduled = bodies[sent % len(bodies)], time.perf_counter()
                    sent += 1
                else:
                    entry = await queue.get()
                    if entry is None:
                        return
                    scheduled, body = entry
                try:
                    status = await asyncio.wait_for(_post(reader, writer, body), timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - scheduled)
                else:
                    errors += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    if rate is not None:
        interval = 1.0 / rate
        count = min(len(bodies), int(rate * seconds), max_requests)
        for i in range(count):
            scheduled = started + i * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((scheduled, bodies[i]))
            sent += 1
        for _ in tasks:
            queue.put_nowait(None)
    await asyncio.wait(tasks, timeout=seconds + timeout + 5)
    elapsed = time.perf_counter() - started
    return latencies, sent, errors, elapsed


def measure(target: str, port: int, bodies: list[bytes], rate: float | None, args) -> Result:
    latencies, sent, errors, elapsed = asyncio.run(
        _run(port, bodies, rate, args.seconds, args.concurrency, args.timeout, args.max_requests)
    )
    errors += max(0, sent - len(latencies) - errors)  # unanswered when the run was cut off
    values = np.array(latencies) * 1000.0 if latencies else np.array([np.nan])
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    result = Result(
        target=target,
        mode="saturation" if rate is None else "fixed rate",
        offered_rps=rate or 0.0,
        sent=sent,
        ok=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50=float(p50),
        p95=float(p95),
        p99=float(p99),
    )
    print(
        f"{target:8s} {result.mode:10s} offered={result.offered_rps:5.0f}/s "
        f"sent={sent} ok={result.ok} errors={errors} throughput={result.throughput:6.1f}/s "
        f"p50={p50:.1f} p95={p95:.1f} p99={p99:.1f} ms",
        flush=True,
    )
    return result


# ---- report ----------------------------------------------------------------------------------
def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average at start "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"
    )


def write_report(path: Path, results: list[Result], command: str, setup: str, host: str) -> None:
    lines = [
        "## Serving",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {host}.",
        "",
        setup,
        "",
        "| server | mode | offered req/s | sent | ok | error rate | throughput req/s "
        "| p50 ms | p95 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        offered = f"{r.offered_rps:.0f}" if r.offered_rps else "closed loop"
        lines.append(
            f"| {r.target} | {r.mode} | {offered} | {r.sent} | {r.ok} | {r.error_rate:.2%} "
            f"| {r.throughput:.1f} | {r.p50:.1f} | {r.p95:.1f} | {r.p99:.1f} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bentos.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rates", default="100,300,500", help="offered rates, req/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each run, s")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--timeout", type=float, default=5.0, help="request timeout, s")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="requests per run at most"
    )
    parser.add_argument("--bundle", type=Path, help="bundle to serve (default: synthetic)")
    parser.add_argument("--users", type=int, default=20_000, help="synthetic users")
    parser.add_argument("--items", type=int, default=5_000, help="synthetic books")
    parser.add_argument("--per-user", type=int, default=20, help="synthetic books per user")
    parser.add_argument("--model", default="itemknn", help="model of the synthetic bundle")
    parser.add_argument("--workers", type=int, default=1, help="BentoML worker processes")
    parser.add_argument("--targets", default="bentoml,bare", help="servers to measure")
    parser.add_argument("--out", type=Path, help="write the Markdown section here")
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_bare is not None:
        import uvicorn

        app = bare_app(args.serve_bare)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
        return 0

    host = machine()
    work = Path(tempfile.mkdtemp(prefix="bookrecs-bench-"))
    bundle = args.bundle or build_bundle(
        work / "bundle", args.users, args.items, args.per_user, args.model, seed=42
    )
    from bookrecs.serving_bundle import load_bundle

    loaded = load_bundle(bundle)
    n_users, n_items = len(loaded.users), loaded.n_items
    rates = [float(rate) for rate in args.rates.split(",") if rate]
    bodies = request_bodies(n_users, n_items, int(max(rates) * args.seconds) + 1, seed=7)
    env = {
        "BENTOML_HOME": str(work / "bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "true",
        "OPENBLAS_NUM_THREADS": "1",
        "BOOKRECS_BUNDLE": str(bundle),
        "BOOKRECS_IMPRESSIONS": str(work / "impressions.sqlite"),
        "BOOKRECS_RATE_LIMIT": "0",
        "BOOKRECS_WORKERS": str(args.workers),
    }
    results: list[Result] = []
    for target in args.targets.split(","):
        port = free_port()
        if target == "bentoml":
            command = [
                BENTOML,
                "serve",
                "bentos.service:BookRecs",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "bentos.bench",
                "--serve-bare",
                str(bundle),
                "--port",
                str(port),
            ]
        with server(command, env, port, work / f"{target}.log"):
            measure(
                target,
                port,
                bodies[:200],
                50.0,
                argparse.Namespace(**{**vars(args), "seconds": 2.0}),
            )  # warm-up, not reported
            for rate in rates:
                results.append(measure(target, port, bodies, rate, args))
            results.append(measure(target, port, bodies, None, args))

    setup = (
        f"Bundle: {n_users:,} users x {n_items:,} books, model `{loaded.meta.get('model')}`, "
        f"top-{loaded.meta.get('k_precompute')} lists. BentoML workers: {args.workers}, "
        "impression log on, rate limit off. Bare: Starlette on uvicorn, one process, "
        "precomputed list lookup only. Each fixed-rate run lasts "
        f"{args.seconds:g} s with {args.concurrency} keep-alive connections; latency counts "
        "from the scheduled send time. Saturation: closed loop, same connections."
    )
    command = "python -m bentos.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.out:
        write_report(args.out, results, command, setup, host)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
