"""Recommendation engine behind the service: version slots, fallback chain and impression log.

The engine keeps two loaded serving bundles, the current and the previous version, in one
immutable `Slots` object. A watcher thread polls the serving pointer, the bundle files and the
availability file. When something changed, it loads the new bundle fully and only then replaces
the `Slots` reference, so a request in flight keeps the snapshot it started with and never reads
a half-loaded version.

Every request walks the fallback chain: the current model, the previous model, then the
popular and new lists of the last bundle that loaded. A step that raises, times out or does
not know the user hands over to the next one; the response names the step that answered as
its `source`. Nothing here imports BentoML, so the engine is tested and benchmarked alone.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from bentos.settings import ServiceSettings
from bentos.store import pointer_path, read_pointer
from bookrecs.assignment import assign_variant
from bookrecs.availability import AvailabilityTable
from bookrecs.exceptions import BookRecsError, ModelLoadError
from bookrecs.explain import explain
from bookrecs.impressions import Impression, ImpressionWriter, ShownItem, hash_user
from bookrecs.models.base import Recommender, top_k
from bookrecs.recommend import (
    METADATA,
    MODEL,
    NEW,
    POPULAR,
    PREVIOUS_MODEL,
    Candidates,
    FilledList,
    blocked_mask,
    explain_items,
    fill_to_k,
    run_chain,
    similar_by_metadata,
)
from bookrecs.serving_bundle import ServingBundle, bundle_fingerprint, load_bundle

logger = logging.getLogger("bookrecs.serving")

# Books of a user's history used for reasons (the most recent ones by index order).
MAX_HISTORY = 200
# Similar-book candidates asked from a model or the metadata index: at least SIMILAR_CACHED
# (so one cached entry serves every k up to it), plus SIMILAR_EXTRA to replace filtered books.
SIMILAR_CACHED = 30
SIMILAR_EXTRA = 20
# Books whose similar lists are cached per process; the cache is emptied when full.
SIMILAR_CACHE_SIZE = 50_000
# Maximum wait in seconds between refresh attempts after repeated unexpected failures.
MAX_REFRESH_DELAY = 60.0


class BookNotFoundError(BookRecsError):
    """A book id is in none of the loaded catalogues."""


class BlockingCallNeeded(Exception):  # noqa: N818 - a signal, not an error
    """An inline request needs a model call that may block: repeat it with inline=False."""


@dataclass(frozen=True)
class ServedItem:
    """One recommended book as the client sees it."""

    item_id: str
    title: str
    score: float
    reason: str


@dataclass(frozen=True)
class Served:
    """One response: the list, where it came from and the request's ids."""

    request_id: str
    variant: str
    source: str
    model_version: str
    placement: str
    items: list[ServedItem]
    latency_ms: float


@dataclass(frozen=True)
class Slots:
    """The loaded versions; replaced as a whole, never changed in place."""

    current: ServingBundle | None = None
    previous: ServingBundle | None = None
    current_tag: str | None = None
    previous_tag: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Answer:
    bundle: ServingBundle | None
    filled: FilledList
    history: np.ndarray


class Counters:
    """Thread-safe named counters."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, value: int = 1) -> int:
        with self._lock:
            self._counts[name] += value
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))


class RecommendationEngine:
    """Serve recommendations from the current version with the fallback chain behind it.

    Parameters
    ----------
    settings
        Service settings (see `ServiceSettings`).
    writer
        Impression writer; default: a writer on `settings.impressions` when
        `settings.log_impressions` is true.
    availability
        Availability table; default: one on `settings.availability`.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        writer: ImpressionWriter | None = None,
        availability: AvailabilityTable | None = None,
    ) -> None:
        self.settings = settings
        self.availability = availability or AvailabilityTable(settings.availability)
        if writer is None and settings.log_impressions:
            writer = ImpressionWriter(settings.impressions)
        self.writer = writer
        self.counters = Counters()
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._slots = Slots()
        self._last_good: ServingBundle | None = None
        self._watch_key: Any = None
        self._cache: dict[str, tuple[Any, ServingBundle]] = {}
        self._executors: dict[int, ThreadPoolExecutor] = {}
        self._local = threading.local()
        self._similar_cache: dict[tuple[int, int, int, str], list[Candidates]] = {}
        # Request ids: a random per-process prefix and a counter (uuid4 per request costs an
        # os.urandom call, which dominated the engine's time in profiles).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count()
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        try:
            self.refresh()
        except Exception as error:  # noqa: BLE001 - the service starts and the watcher retries
            self.counters.add("refresh_errors")
            logger.exception(
                "loading the served versions failed: %s; serving fallback lists until a "
                "refresh succeeds",
                error,
            )

    # ---- versions --------------------------------------------------------------------------
    @property
    def slots(self) -> Slots:
        return self._slots

    def _targets(self) -> tuple[tuple[str, str | None, str | None], ...]:
        """Return (slot, tag, path) of the current and previous version to serve."""
        if self.settings.bundle is not None:
            previous = self.settings.previous_bundle
            return (
                ("current", str(self.settings.bundle), str(self.settings.bundle)),
                (
                    "previous",
                    str(previous) if previous else None,
                    str(previous) if previous else None,
                ),
            )
        pointer = read_pointer(self.settings.serving_pointer)
        paths = pointer.get("paths", {})
        return tuple(
            (slot, pointer.get(slot), paths.get(pointer.get(slot)) if pointer.get(slot) else None)
            for slot in ("current", "previous")
        )

    def refresh(self) -> bool:
        """Reload what changed on disk (pointer, bundles, availability); return True on a swap.

        A version that fails to load leaves its slot empty, so requests fall back to the
        previous version and then to the popular lists. The error is counted and logged.
        """
        with self._refresh_lock:
            self.availability.refresh()
            try:
                targets = self._targets()
            except BookRecsError as error:
                self.counters.add("pointer_errors")
                logger.error("%s; keeping the loaded versions", error)
                return False
            key = tuple(
                (slot, tag, path, bundle_fingerprint(path) if path else None)
                for slot, tag, path in targets
            )
            if key == self._watch_key:
                return False
            self._swap(key)
            return True

    def _swap(self, key: tuple) -> None:
        loaded: dict[str, ServingBundle | None] = {}
        errors: dict[str, str] = {}
        tags: dict[str, str | None] = {}
        for slot, tag, path, fingerprint in key:
            tags[slot] = tag
            loaded[slot] = None
            if path is None:
                if tag is not None:
                    errors[slot] = f"no bundle path for {tag} in the serving pointer"
                continue
            cached = self._cache.get(path)
            if cached is not None and cached[0] == fingerprint:
                loaded[slot] = cached[1]
                continue
            try:
                loaded[slot] = load_bundle(path, version=tag)
            except ModelLoadError as error:
                errors[slot] = str(error)
                self.counters.add("model_load_failures")
                logger.error("cannot serve %s version %s: %s", slot, tag, error)

        slots = Slots(
            current=loaded.get("current"),
            previous=loaded.get("previous"),
            current_tag=tags.get("current"),
            previous_tag=tags.get("previous"),
            errors=errors,
        )
        before = self._slots
        self._slots = slots
        self._last_good = slots.current or slots.previous or self._last_good
        self._watch_key = key
        self._cache = {
            path: (fingerprint, loaded[slot])
            for slot, _, path, fingerprint in key
            if path is not None and loaded[slot] is not None
        }
        self._retire_executors(slots)
        self._similar_cache = {}
        logger.info(
            "serving current=%s previous=%s (was current=%s previous=%s)%s",
            _describe(slots.current, slots.current_tag),
            _describe(slots.previous, slots.previous_tag),
            _describe(before.current, before.current_tag),
            _describe(before.previous, before.previous_tag),
            f"; load errors: {sorted(errors)}" if errors else "",
        )

    def start(self) -> None:
        """Start the watcher thread that calls `refresh` every `poll_seconds`."""
        if self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="bundle-watcher", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        delay = self.settings.poll_seconds
        failures = 0
        while not self._stop.wait(delay):
            try:
                self.refresh()
            except Exception as error:  # noqa: BLE001 - the watcher must survive any failure
                failures += 1
                self.counters.add("refresh_errors")
                delay = min(self.settings.poll_seconds * 2**failures, MAX_REFRESH_DELAY)
                if failures == 1:
                    logger.exception(
                        "refreshing the served versions failed; retrying in %.0f s", delay
                    )
                else:
                    logger.warning(
                        "refreshing the served versions failed again (#%d): %s: %s; "
                        "retrying in %.0f s",
                        failures,
                        type(error).__name__,
                        error,
                        delay,
                    )
                continue
            if failures:
                logger.info(
                    "refreshing the served versions works again after %d failures", failures
                )
            failures = 0
            delay = self.settings.poll_seconds

    def close(self) -> None:
        """Stop the watcher, flush the impression log and stop scoring threads."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.writer is not None:
            self.writer.close()
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors.clear()

    def ready(self) -> bool:
        """Return True when some bundle is loaded, so lists can be served."""
        return self._last_good is not None

    # ---- requests --------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str,
        k: int = 10,
        placement: str = "home",
        book_id: str | None = None,
        *,
        inline: bool = False,
    ) -> Served:
        """Return exactly `k` books for `user_id` (fewer only if the catalogue is smaller).

        With `book_id`, books similar to it come first (e.g. on a book page); the book itself,
        the user's books and unavailable books are never returned. An unexpected error is
        logged and counted, and the method returns an empty popular list instead of raising.

        With `inline=True` (a caller on an event loop), a request that needs a model call
        raises `BlockingCallNeeded` before any side effect instead of waiting for the model;
        the caller then repeats it with inline=False on a worker thread.
        """
        started = time.perf_counter()
        self._local.inline = inline
        try:
            return self._recommend(user_id, k, placement, book_id, started)
        except BlockingCallNeeded:
            raise
        except Exception:  # noqa: BLE001 - the last line of defence of the "always answer" rule
            return self._emergency(user_id, placement, "recommend", started)

    def _recommend(
        self, user_id: str, k: int, placement: str, book_id: str | None, started: float
    ) -> Served:
        variant = assign_variant(
            user_id,
            self.settings.experiment_salt,
            self.settings.variants,
            self.settings.variant_weights,
        )
        slots = self._slots
        steps = []
        if variant not in self.settings.popular_variants:
            if slots.current is not None:
                steps.append((MODEL, partial(self._answer, slots.current, user_id, k, book_id)))
            if slots.previous is not None:
                steps.append(
                    (PREVIOUS_MODEL, partial(self._answer, slots.previous, user_id, k, book_id))
                )
        steps.append((POPULAR, partial(self._answer_fallback, user_id, k, book_id)))
        return self._serve(
            steps, slots, user_id, variant, placement, "recommend", k, started, book_id
        )

    def similar(
        self, book_id: str, k: int = 10, user_id: str | None = None, *, inline: bool = False
    ) -> Served:
        """Return `k` books similar to `book_id`; a cold book is matched by its metadata.

        `inline` works as in `recommend`.

        Raises
        ------
        BookNotFoundError
            When `book_id` is in none of the loaded catalogues.
        BlockingCallNeeded
            With inline=True, when a model call is needed.
        """
        started = time.perf_counter()
        self._local.inline = inline
        try:
            return self._similar(book_id, k, user_id, started)
        except (BookNotFoundError, BlockingCallNeeded):
            raise
        except Exception:  # noqa: BLE001 - the last line of defence of the "always answer" rule
            return self._emergency(user_id or "", "book", "similar", started)

    def _similar(self, book_id: str, k: int, user_id: str | None, started: float) -> Served:
        slots = self._slots
        known = [b for b in (slots.current, slots.previous, self._last_good) if b is not None]
        if not any(book_id in bundle.item_index for bundle in known):
            self.counters.add("unknown_book")
            raise BookNotFoundError(
                f"book_id {book_id!r} is not in the catalogue of the served model: "
                "check the id (Goodreads book_id as a string)"
            )
        variant = ""
        if user_id:
            variant = assign_variant(
                user_id,
                self.settings.experiment_salt,
                self.settings.variants,
                self.settings.variant_weights,
            )
        steps = []
        for source, bundle in ((MODEL, slots.current), (PREVIOUS_MODEL, slots.previous)):
            if bundle is not None:
                steps.append((source, partial(self._answer_similar, bundle, book_id, k, user_id)))
        steps.append((POPULAR, partial(self._answer_fallback, user_id or "", k, book_id)))
        return self._serve(
            steps, slots, user_id or "", variant, "book", "similar", k, started, book_id
        )

    def _emergency(self, user_id: str, placement: str, endpoint: str, started: float) -> Served:
        count = self.counters.add("internal_errors")
        logger.exception(
            "%s for user %s failed (#%d); returned an empty list", endpoint, user_id, count
        )
        return Served(
            request_id=self._request_id(),
            variant="",
            source=POPULAR,
            model_version="none",
            placement=placement,
            items=[],
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):016x}"

    def _serve(
        self,
        steps: list,
        slots: Slots,
        user_id: str,
        variant: str,
        placement: str,
        endpoint: str,
        k: int,
        started: float,
        book_id: str | None,
    ) -> Served:
        request_id = self._request_id()
        result = run_chain(steps, propagate=(BlockingCallNeeded,))
        answer: _Answer = result.value
        bundle, filled = answer.bundle, answer.filled

        source = result.source
        if filled.origins and filled.origins[0] in (POPULAR, NEW):
            source = filled.origins[0]
        elif not filled.origins and source == POPULAR:
            source = POPULAR
        if bundle is None:
            version = "none"
        elif result.source == PREVIOUS_MODEL:
            version = slots.previous_tag or bundle.version
        elif result.source == MODEL:
            version = slots.current_tag or bundle.version
        else:
            version = bundle.version

        items = self._describe_items(bundle, filled, answer.history)
        latency_ms = (time.perf_counter() - started) * 1000.0
        served = Served(
            request_id=request_id,
            variant=variant,
            source=source,
            model_version=version,
            placement=placement,
            items=items,
            latency_ms=latency_ms,
        )
        self._count(served, result.errors, user_id, slots, endpoint, book_id, k)
        self._log_impression(served, user_id, endpoint, k, bundle, filled)
        return served

    def _answer(
        self, bundle: ServingBundle, user_id: str, k: int, book_id: str | None
    ) -> _Answer | None:
        user = bundle.user_index.get(user_id)
        book = bundle.item_index.get(book_id) if book_id else None
        if user is None and book is None:
            return None
        seen = bundle.seen(user) if user is not None else None
        blocked = blocked_mask(
            bundle.n_items,
            seen=seen,
            unavailable=self.availability.mask(bundle.items),
            exclude=[book] if book is not None else (),
        )
        anchored = self._similar_candidates(bundle, book, k, blocked) if book is not None else []
        personal: list[Candidates] = []
        if user is not None:
            top_items, top_scores = bundle.precomputed(user)
            personal = [Candidates(MODEL, top_items, top_scores)]
        fallback = _fallback_candidates(bundle)
        filled = fill_to_k(anchored + personal + fallback, k, blocked)

        if user is not None and filled.origins.count(MODEL) < k and top_items[-1] >= 0:
            # The precomputed list ran out after filtering and was cut at k_precompute,
            # so the model may rank more books: score this user now.
            scored = self._call(bundle, _score_user, bundle.model, user, blocked, k)
            personal = [Candidates(MODEL, scored[0], scored[1])]
            filled = fill_to_k(anchored + personal + fallback, k, blocked)
        history = _history(seen, book)
        return _Answer(bundle, filled, history)

    def _answer_similar(
        self, bundle: ServingBundle, book_id: str, k: int, user_id: str | None
    ) -> _Answer | None:
        book = bundle.item_index.get(book_id)
        if book is None:
            return None
        user = bundle.user_index.get(user_id) if user_id else None
        seen = bundle.seen(user) if user is not None else None
        blocked = blocked_mask(
            bundle.n_items,
            seen=seen,
            unavailable=self.availability.mask(bundle.items),
            exclude=[book],
        )
        candidates = self._similar_candidates(bundle, book, k, blocked) + _fallback_candidates(
            bundle
        )
        filled = fill_to_k(candidates, k, blocked)
        return _Answer(bundle, filled, np.array([book], dtype=np.int64))

    def _answer_fallback(self, user_id: str, k: int, book_id: str | None) -> _Answer:
        bundle = self._last_good
        if bundle is None:
            empty = FilledList(np.empty(0, np.int64), np.empty(0, np.float32), ())
            return _Answer(None, empty, np.empty(0, np.int64))
        user = bundle.user_index.get(user_id) if user_id else None
        book = bundle.item_index.get(book_id) if book_id else None
        seen = bundle.seen(user) if user is not None else None
        blocked = blocked_mask(
            bundle.n_items,
            seen=seen,
            unavailable=self.availability.mask(bundle.items),
            exclude=[book] if book is not None else (),
        )
        filled = fill_to_k(_fallback_candidates(bundle), k, blocked)
        return _Answer(bundle, filled, _history(seen, book))

    def _similar_candidates(
        self, bundle: ServingBundle, book: int, k: int, blocked: np.ndarray
    ) -> list[Candidates]:
        """Return the model's similar books, then metadata matches when too few are left.

        The metadata search runs when fewer than `k` model neighbours survive `blocked` (the
        user's books, unavailable books, the book itself), so a user who has read most
        neighbours gets books of the same series or author for every `k`, not popular books.
        Both lists are cached per bundle and book.
        """
        n = min(bundle.n_items, max(k, SIMILAR_CACHED) + SIMILAR_EXTRA)
        model_key = (id(bundle), book, n, MODEL)
        candidates = self._similar_cache.get(model_key)
        if candidates is None:
            candidates = self._model_neighbours(bundle, book, n)
            self._cache_similar(model_key, candidates)
        neighbours = [candidate.items[candidate.items >= 0] for candidate in candidates]
        usable = np.unique(np.concatenate(neighbours)) if neighbours else np.empty(0, np.int64)
        if int((~blocked[usable]).sum()) >= k:
            return candidates
        # Cold books and heavy readers have few usable model neighbours: match by metadata.
        metadata_key = (id(bundle), book, n, METADATA)
        metadata = self._similar_cache.get(metadata_key)
        if metadata is None:
            ids, scores = similar_by_metadata(book, bundle.facts, n)
            metadata = [Candidates(METADATA, ids, scores)]
            self._cache_similar(metadata_key, metadata)
        return candidates + metadata

    def _model_neighbours(self, bundle: ServingBundle, book: int, n: int) -> list[Candidates]:
        if bundle.similar_items is not None:
            return [Candidates(MODEL, bundle.similar_items[book], bundle.similar_scores[book])]
        if type(bundle.model).similar_items is not Recommender.similar_items:
            ids, scores = self._call(
                bundle, bundle.model.similar_items, np.array([book], dtype=np.int64), n
            )
            return [Candidates(MODEL, ids[0], scores[0])]
        return []

    def _cache_similar(self, key: tuple[int, int, int, str], value: list[Candidates]) -> None:
        if len(self._similar_cache) >= SIMILAR_CACHE_SIZE:
            self._similar_cache.clear()
        self._similar_cache[key] = value

    def _call(self, bundle: ServingBundle, function, *args):
        """Run a model call on the bundle's scoring thread with the configured timeout."""
        if getattr(self._local, "inline", False):
            raise BlockingCallNeeded
        executor = self._executors.get(id(bundle))
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scoring")
            self._executors[id(bundle)] = executor
        future = executor.submit(function, *args)
        return future.result(timeout=self.settings.score_timeout_ms / 1000.0)

    def _retire_executors(self, slots: Slots) -> None:
        alive = {id(bundle) for bundle in (slots.current, slots.previous) if bundle is not None}
        for key in list(self._executors):
            if key not in alive:
                self._executors.pop(key).shutdown(wait=False, cancel_futures=True)

    def _describe_items(
        self, bundle: ServingBundle | None, filled: FilledList, history: np.ndarray
    ) -> list[ServedItem]:
        if bundle is None or not len(filled):
            return []
        reasons = explain_items(filled.items, filled.origins, history, bundle.facts)
        if self.settings.detailed_reasons:
            reasons = self._detailed_reasons(bundle, filled, history, reasons)
        ids = bundle.items.ids
        return [
            ServedItem(
                item_id=str(ids[item]),
                title=bundle.titles[item],
                score=round(float(score), 6) if np.isfinite(score) else 0.0,
                reason=reason,
            )
            for item, score, reason in zip(
                filled.items.tolist(), filled.scores.tolist(), reasons, strict=True
            )
        ]

    def _detailed_reasons(
        self,
        bundle: ServingBundle,
        filled: FilledList,
        history: np.ndarray,
        reasons: list[str],
    ) -> list[str]:
        """Replace the reasons of model items with `bookrecs.explain` ones ("same series: X")."""
        positions = [i for i, origin in enumerate(filled.origins) if origin in (MODEL, METADATA)]
        if not positions:
            return reasons
        try:
            detailed = explain(history, filled.items[positions], bundle.reason_books)
        except (BookRecsError, ValueError, pl.exceptions.PolarsError) as error:
            count = self.counters.add("explain_errors")
            if count == 1 or count % 100 == 0:
                logger.warning("explain failed (#%d), using short reasons: %s", count, error)
            return reasons
        reasons = list(reasons)
        for position, reason in zip(positions, detailed, strict=True):
            reasons[position] = reason
        return reasons

    # ---- reporting -------------------------------------------------------------------------
    def _count(
        self,
        served: Served,
        errors: tuple[tuple[str, str], ...],
        user_id: str,
        slots: Slots,
        endpoint: str,
        book_id: str | None,
        k: int,
    ) -> None:
        self.counters.add(f"requests_{endpoint}")
        self.counters.add(f"source_{served.source}")
        if len(served.items) < k:
            self.counters.add("short_lists")
        if any(message == "no result" for _, message in errors):
            self.counters.add("fallback_unknown_user")
        for source, message in errors:
            if message == "no result":
                continue
            kind = "timeout" if message.startswith("TimeoutError") else "error"
            count = self.counters.add(f"fallback_{kind}")
            if count == 1 or count % 100 == 0:
                logger.warning(
                    "request %s (%s, user %s, book %s): %s step failed, %s #%d: %s; "
                    "answered from %s",
                    served.request_id,
                    endpoint,
                    user_id,
                    book_id,
                    source,
                    kind,
                    count,
                    message,
                    served.source,
                )
        if slots.current is None and served.variant not in self.settings.popular_variants:
            self.counters.add("fallback_no_current_model")

    def _log_impression(
        self,
        served: Served,
        user_id: str,
        endpoint: str,
        k: int,
        bundle: ServingBundle | None,
        filled: FilledList,
    ) -> None:
        if self.writer is None:
            return
        cold = int(bundle.cold[filled.items].sum()) if bundle is not None and len(filled) else 0
        try:
            impression = Impression(
                request_id=served.request_id,
                user_hash=hash_user(user_id, self.settings.user_salt),
                variant=served.variant,
                placement=served.placement,
                endpoint=endpoint,
                model_version=served.model_version,
                source=served.source,
                k=k,
                items=[
                    ShownItem(item.item_id, position, item.score, item.reason)
                    for position, item in enumerate(served.items, start=1)
                ],
                latency_ms=round(served.latency_ms, 3),
                cold_items=cold,
            )
            self.writer.log(impression)
        except Exception:  # noqa: BLE001 - a broken log must never fail the request
            self.counters.add("impression_errors")
            logger.exception("request %s: cannot queue the impression", served.request_id)

    def info(self) -> dict[str, Any]:
        """Return the served versions, load times, load errors and counters."""
        slots = self._slots
        return {
            "started_at": self.started_at,
            "ready": self.ready(),
            "current": _version_info(slots.current, slots.current_tag),
            "previous": _version_info(slots.previous, slots.previous_tag),
            "fallback_lists": _version_info(self._last_good, None),
            "load_errors": dict(slots.errors),
            "counters": self.counters.snapshot(),
            "impressions": self.writer.stats() if self.writer is not None else None,
            "unavailable_books": len(self.availability.unavailable),
            "serving_pointer": str(pointer_path(self.settings.serving_pointer))
            if self.settings.bundle is None
            else None,
        }


def _score_user(
    model: Recommender, user: int, blocked: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(model.score(np.array([user], dtype=np.int64)), dtype=np.float32).copy()
    scores[0, blocked] = -np.inf
    ids, values = top_k(scores, k)
    return ids[0], values[0]


def _fallback_candidates(bundle: ServingBundle) -> list[Candidates]:
    return [
        Candidates(POPULAR, bundle.popular, bundle.popular_scores),
        Candidates(NEW, bundle.new),
    ]


def _history(seen: np.ndarray | None, book: int | None) -> np.ndarray:
    history = seen[-MAX_HISTORY:] if seen is not None else np.empty(0, np.int64)
    if book is not None:
        history = np.append(history, book)
    return history.astype(np.int64)


def _describe(bundle: ServingBundle | None, tag: str | None) -> str:
    if tag is None:
        return "none"
    return tag if bundle is not None else f"{tag} (failed)"


def _version_info(bundle: ServingBundle | None, tag: str | None) -> dict[str, Any] | None:
    if bundle is None:
        return {"tag": tag, "loaded": False} if tag else None
    return {
        "tag": tag or bundle.version,
        "loaded": True,
        "run_id": bundle.run_id,
        "model": bundle.meta.get("model"),
        "created_at": bundle.meta.get("created_at"),
        "loaded_at": bundle.loaded_at,
        "load_seconds": round(bundle.load_seconds, 3),
        "path": str(bundle.path),
        "metrics": bundle.meta.get("metrics", {}),
    }


def engine_from_env() -> RecommendationEngine:
    """Build an engine from BOOKRECS_* variables (see `ServiceSettings`)."""
    return RecommendationEngine(ServiceSettings.from_env())
