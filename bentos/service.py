"""BentoML service: recommendation lists and similar books over HTTP.

Endpoints (JSON, POST unless noted):

- /recommend: user_id, k (1..100, default 10), placement (home | book | cart), book_id;
- /similar: book_id, k, optional user_id; 404 for a book in no loaded catalogue;
- a wrong type (also `true` or "5" for k) or an unknown field gets 400 naming the field, and a
  body over BOOKRECS_MAX_BODY_BYTES (64 KiB) gets 413;
- /info: served versions, load times and counters (also GET /ops/info);
- GET /livez and GET /readyz (BentoML's probes; ready once a bundle is loaded).

Serve locally with
`bentoml serve bentos.service:BookRecs --host 127.0.0.1 --port 3000`. Settings come from
BOOKRECS_* environment variables (see `bentos.settings.ServiceSettings`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import anyio
import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bentos.engine import BlockingCallNeeded, BookNotFoundError, RecommendationEngine, Served
from bentos.guards import BodyLimitMiddleware, install_validation_log_filter
from bentos.ratelimit import RateLimitMiddleware, TokenBuckets
from bentos.schemas import (
    BookId,
    Info,
    Item,
    ListSize,
    Placement,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
    UserId,
)
from bentos.settings import ServiceSettings

logger = logging.getLogger("bookrecs.serving")

SETTINGS = ServiceSettings.from_env()
BUCKETS = TokenBuckets(SETTINGS.rate_limit, SETTINGS.rate_burst)


async def _ops_info(_: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    return JSONResponse(_info(service.engine).model_dump())


ops_app = Starlette(routes=[Route("/info", _ops_info, methods=["GET"])])


@bentoml.asgi_app(ops_app, path="/ops")
@bentoml.service(
    name="bookrecs",
    workers=SETTINGS.workers,
    threads=4,
    traffic={"timeout": 10},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
class BookRecs:
    """Book recommendations that always return a list: model, previous model, popular, new."""

    def __init__(self) -> None:
        # BentoML leaves the root logger at WARNING, which hid the bookrecs INFO lines
        # (version swaps, skipped availability rows, shutdown).
        logging.getLogger("bookrecs").setLevel(SETTINGS.log_level)
        install_validation_log_filter()
        self.engine = RecommendationEngine(SETTINGS)
        self.engine.start()

    @bentoml.api(input_spec=RecommendRequest)
    async def recommend(
        self,
        user_id: UserId,
        k: ListSize = 10,
        placement: Placement = "home",
        book_id: BookId | None = None,
    ) -> RecommendResponse:
        """Return exactly k books for the user, never one the user has or that is unavailable."""
        call = partial(self.engine.recommend, user_id, k, placement, book_id)
        return _response(await _run(call))

    @bentoml.api(input_spec=SimilarRequest)
    async def similar(
        self, book_id: BookId, k: ListSize = 10, user_id: UserId | None = None
    ) -> RecommendResponse:
        """Return k books similar to book_id; a cold book is matched by its metadata.

        A book in no loaded catalogue gets 404 with {"error": message}.
        """
        try:
            served = await _run(partial(self.engine.similar, book_id, k, user_id))
        except BookNotFoundError as error:
            # A plain response: BentoML logs a traceback for every raised NotFound.
            return JSONResponse({"error": str(error)}, status_code=404)  # type: ignore[return-value]
        return _response(served)

    @bentoml.api
    def info(self) -> Info:
        """Return the served versions, load times, load errors and counters."""
        return _info(self.engine)

    def __is_ready__(self) -> bool:
        return self.engine.ready()

    @bentoml.on_shutdown
    def close(self) -> None:
        self.engine.close()
        logger.info("service stopped; impression log flushed")


async def _run(call: Callable[..., Served]) -> Served:
    """Run `call` on the event loop when precomputed lists suffice, else on a worker thread.

    Most requests are dictionary and array lookups that take well under a millisecond, so a
    thread hop would cost more than the work; only requests that call the model (which may
    block up to the scoring timeout) leave the event loop.
    """
    try:
        return call(inline=True)
    except BlockingCallNeeded:
        return await anyio.to_thread.run_sync(partial(call, inline=False))


def _info(engine: RecommendationEngine) -> Info:
    return Info(**engine.info(), rate_limited=BUCKETS.rejected)


def _response(served: Served) -> RecommendResponse:
    return RecommendResponse(
        request_id=served.request_id,
        variant=served.variant,
        source=served.source,
        model_version=served.model_version,
        placement=served.placement,
        items=[
            Item(item_id=item.item_id, title=item.title, score=item.score, reason=item.reason)
            for item in served.items
        ],
    )


BookRecs.add_asgi_middleware(
    RateLimitMiddleware, buckets=BUCKETS, key_header=SETTINGS.rate_key_header
)
BookRecs.add_asgi_middleware(BodyLimitMiddleware, max_bytes=SETTINGS.max_body_bytes)
