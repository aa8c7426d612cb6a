"""Simulated pilots with a known effect: per-user totals for many runs, or full event logs.

Both generators draw from the same user model (`Behaviour`), so a statistical test checked on
the fast per-user totals also holds for the readout run on simulated event logs:

* sessions per user are ``1 + NegBin``: most users have one session, a few have dozens;
* each user has a purchase propensity ``p ~ Beta`` per session and a click-through rate
  ``c ~ Beta`` per exposure. Order values are lognormal (long right tail);
* the treatment multiplies p and c by ``1 + effect``, so revenue per session, purchase share
  and CTR all rise by `effect` in expectation;
* faults: `srm` drops that share of treatment users from the logs, and `breach` worsens
  guardrails of the treatment (``p95_latency_ms`` and ``return_rate`` relative, ``error_rate``
  absolute).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from bookrecs.assignment import assign_variant, assign_variants
from bookrecs.exceptions import ConfigError

logger = logging.getLogger("bookrecs.pilot")

BREACH_METRICS = ("p95_latency_ms", "return_rate", "error_rate")
PLATFORMS = (("web", 0.5), ("ios", 0.3), ("android", 0.2))
PLACEMENTS = (("home", 0.7), ("book_page", 0.3))


@dataclass(frozen=True)
class Behaviour:
    """Parameters of simulated user behaviour (one set for both arms before the effect)."""

    extra_sessions_mean: float = 1.5
    extra_sessions_dispersion: float = 0.3
    max_sessions: int = 60
    purchase_alpha: float = 0.6
    purchase_beta: float = 12.0
    ctr_alpha: float = 1.0
    ctr_beta: float = 9.0
    extra_exposures_mean: float = 0.5
    order_log_mean: float = 2.7
    order_log_sd: float = 0.7
    cart_factor: float = 2.5
    return_rate: float = 0.08
    error_rate: float = 0.002
    latency_median_ms: float = 45.0
    latency_log_sd: float = 0.35
    attributed_share: float = 0.6


def parse_breach(text: str | None) -> dict[str, float]:
    """Parse ``metric=size,metric=size`` (for example ``p95_latency_ms=0.3``) into a dict."""
    if not text:
        return {}
    breach = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in BREACH_METRICS or not value:
            raise ConfigError(
                f"invalid guardrail breach {part!r}; use metric=size with metric one of "
                f"{', '.join(BREACH_METRICS)}, e.g. p95_latency_ms=0.3"
            )
        breach[name] = float(value)
    return breach


def _activity(shape, behaviour: Behaviour, rng: np.random.Generator) -> np.ndarray:
    """Draw each user's expected extra sessions per period, ``Gamma(r, mean / r)``."""
    r = behaviour.extra_sessions_dispersion
    return rng.gamma(r, behaviour.extra_sessions_mean / r, size=shape)


def _sessions(activity: np.ndarray, behaviour: Behaviour, rng: np.random.Generator) -> np.ndarray:
    """Draw sessions per user, ``1 + Poisson(activity)``: marginally ``1 + NegBin``."""
    return np.minimum(1 + rng.poisson(activity), behaviour.max_sessions)


def _propensities(shape, behaviour: Behaviour, lift: float, rng: np.random.Generator):
    purchase = rng.beta(behaviour.purchase_alpha, behaviour.purchase_beta, size=shape)
    ctr = rng.beta(behaviour.ctr_alpha, behaviour.ctr_beta, size=shape)
    return np.minimum(purchase * (1 + lift), 1.0), np.minimum(ctr * (1 + lift), 1.0)


def simulate_totals(
    n_users: int,
    n_runs: int,
    effect: float = 0.0,
    breach: Mapping[str, float] | None = None,
    behaviour: Behaviour | None = None,
    seed: int = 0,
    pre_period: bool = False,
) -> dict[str, np.ndarray]:
    """Draw per-user totals of one arm for `n_runs` independent pilots at once.

    Returns arrays of shape ``(n_runs, n_users)`` keyed like `pilot.totals.USER_TOTALS`
    (without attributed revenue, which needs event order). Pass ``effect=0`` for a control arm
    or an A/A run. With `pre_period`, the same users' totals of an earlier period without
    effect or breach are added under ``pre_<name>`` keys, as the CUPED covariate.
    """
    behaviour = behaviour or Behaviour()
    rng = np.random.default_rng(seed)
    shape = (n_runs, n_users)
    activity = _activity(shape, behaviour, rng)
    purchase, ctr = _propensities(shape, behaviour, 0.0, rng)

    totals = _period_totals(activity, purchase, ctr, effect, dict(breach or {}), behaviour, rng)
    if pre_period:
        earlier = _period_totals(activity, purchase, ctr, 0.0, {}, behaviour, rng)
        totals.update({f"pre_{name}": values for name, values in earlier.items()})
    return totals


def _period_totals(activity, purchase, ctr, effect, breach, behaviour, rng) -> dict:
    shape = activity.shape
    purchase = np.minimum(purchase * (1 + effect), 1.0)
    ctr = np.minimum(ctr * (1 + effect), 1.0)
    sessions = _sessions(activity, behaviour, rng)
    exposures = sessions + rng.poisson(behaviour.extra_exposures_mean * sessions)
    clicks = rng.binomial(exposures, ctr)
    carts = rng.binomial(sessions, np.minimum(behaviour.cart_factor * purchase, 1.0))
    purchase_sessions = rng.binomial(sessions, purchase)

    flat_orders = purchase_sessions.ravel()
    owners = np.repeat(np.arange(flat_orders.size), flat_orders)
    values = rng.lognormal(behaviour.order_log_mean, behaviour.order_log_sd, size=owners.size)
    revenue = np.bincount(owners, weights=values, minlength=flat_orders.size).reshape(shape)

    return_rate = behaviour.return_rate * (1 + breach.get("return_rate", 0.0))
    returned = rng.binomial(purchase_sessions, min(return_rate, 1.0))
    error_rate = behaviour.error_rate + breach.get("error_rate", 0.0)
    errors = rng.binomial(exposures, min(error_rate, 1.0))
    return {
        "sessions": sessions.astype(float),
        "exposures": exposures.astype(float),
        "clicks": clicks.astype(float),
        "add_to_carts": carts.astype(float),
        "purchase_sessions": purchase_sessions.astype(float),
        "orders": purchase_sessions.astype(float),
        "revenue": revenue,
        "returned_orders": returned.astype(float),
        "errors": errors.astype(float),
        "requests": (exposures + errors).astype(float),
        "converted": (purchase_sessions > 0).astype(float),
        "users": np.ones(shape),
    }


def simulate_assignment_counts(
    n_users: int, n_runs: int, shares: tuple[float, float], srm: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Draw (control, treatment) user counts of `n_runs` pilots; `srm` loses treatment users."""
    rng = np.random.default_rng(seed)
    treatment = rng.binomial(n_users, shares[1], size=n_runs)
    control = n_users - treatment
    kept_treatment = rng.binomial(treatment, 1.0 - srm)
    return np.stack([control, kept_treatment], axis=-1)


@dataclass(frozen=True)
class EventFaults:
    """Data faults injected into a simulated event log, to exercise the data checks."""

    duplicate_share: float = 0.0
    bots: int = 0
    missing_day: int | None = None
    incomplete_day: int | None = None


def simulate_events(
    n_users: int,
    start_date: dt.date,
    days: int,
    salt: str,
    variants: Mapping[str, float],
    control: str = "control",
    effect: float = 0.0,
    srm: float = 0.0,
    breach: Mapping[str, float] | None = None,
    faults: EventFaults | None = None,
    behaviour: Behaviour | None = None,
    seed: int = 0,
    period: int = 0,
) -> pl.DataFrame:
    """Generate one pilot's event log in `pilot.events.EVENT_SCHEMA`.

    Users are assigned with `bookrecs.assignment.assign_variant` and the plan's salt, so the
    readout's assignment check passes. Every session starts with a `session` row, and exposures
    follow at 5-second steps, then clicks, add-to-carts and a purchase. Returns follow 1 to 72
    hours after the purchase, and those that would fall after the last day are not logged.

    The users and their propensities depend only on `seed`. A different `period` draws new
    sessions for the same users, for example a pre-period log (with ``effect=0``) whose
    totals are the CUPED covariate.
    """
    behaviour = behaviour or Behaviour()
    breach = dict(breach or {})
    faults = faults or EventFaults()
    user_rng = np.random.default_rng(seed)
    rng = np.random.default_rng([seed, period])
    names = list(variants)
    treatment = next(name for name in names if name != control)

    user_ids = np.array([f"u{index:07d}" for index in range(n_users)])
    assigned = np.array(assign_variants(user_ids, salt, names, list(variants.values())))
    is_treatment = assigned == treatment
    platform = user_rng.choice([p for p, _ in PLATFORMS], size=n_users, p=[w for _, w in PLATFORMS])
    placement = user_rng.choice(
        [p for p, _ in PLACEMENTS], size=n_users, p=[w for _, w in PLACEMENTS]
    )
    activity = _activity(n_users, behaviour, user_rng)
    purchase, ctr = _propensities(n_users, behaviour, 0.0, user_rng)
    keep = ~(is_treatment & (user_rng.random(n_users) < srm))

    user_ids, assigned, is_treatment = user_ids[keep], assigned[keep], is_treatment[keep]
    platform, placement, activity = platform[keep], placement[keep], activity[keep]
    purchase, ctr = purchase[keep], ctr[keep]
    n = user_ids.size
    purchase = np.where(is_treatment, np.minimum(purchase * (1 + effect), 1), purchase)
    ctr = np.where(is_treatment, np.minimum(ctr * (1 + effect), 1), ctr)

    sessions_per_user = _sessions(activity, behaviour, rng)
    session_user = np.repeat(np.arange(n), sessions_per_user)
    n_sessions = session_user.size
    horizon = days * 86_400.0
    session_start = rng.uniform(0, horizon - 600, size=n_sessions)
    session_id = np.array([f"s{index:08d}" for index in range(n_sessions)])

    exposures_per_session = 1 + rng.poisson(behaviour.extra_exposures_mean, size=n_sessions)
    exposure_session = np.repeat(np.arange(n_sessions), exposures_per_session)
    step = np.arange(exposure_session.size) - np.repeat(
        np.cumsum(exposures_per_session) - exposures_per_session, exposures_per_session
    )
    exposure_time = session_start[exposure_session] + 5.0 * (step + 1)
    exposure_user = session_user[exposure_session]
    error_rate = behaviour.error_rate + breach.get("error_rate", 0.0) * is_treatment[exposure_user]
    is_error = rng.random(exposure_session.size) < error_rate
    latency = rng.lognormal(
        np.log(behaviour.latency_median_ms), behaviour.latency_log_sd, exposure_session.size
    ) * (1 + breach.get("p95_latency_ms", 0.0) * is_treatment[exposure_user])
    clicked = ~is_error & (rng.random(exposure_session.size) < ctr[exposure_user])
    clicked_item = rng.integers(0, 5_000, size=exposure_session.size)

    session_purchase = rng.random(n_sessions) < purchase[session_user]
    session_cart = rng.random(n_sessions) < np.minimum(
        behaviour.cart_factor * purchase[session_user], 1
    )
    # The purchased item is the last clicked item of the session with `attributed_share`.
    last_click = np.full(n_sessions, -1)
    clicked_rows = np.flatnonzero(clicked)
    last_click[exposure_session[clicked_rows]] = clicked_item[clicked_rows]
    from_click = (last_click >= 0) & (rng.random(n_sessions) < behaviour.attributed_share)
    purchase_item = np.where(from_click, last_click, rng.integers(0, 5_000, size=n_sessions))
    order_value = rng.lognormal(behaviour.order_log_mean, behaviour.order_log_sd, n_sessions)
    return_rate = behaviour.return_rate * (
        1 + breach.get("return_rate", 0.0) * is_treatment[session_user]
    )
    returned = session_purchase & (rng.random(n_sessions) < np.minimum(return_rate, 1))
    # Returns arrive 1 to 72 hours after the purchase. Those after the last day are not logged.
    return_time = session_start + 400 + rng.uniform(3_600, 72 * 3_600, size=n_sessions)
    returned &= return_time < horizon

    start = dt.datetime.combine(start_date, dt.time(), tzinfo=dt.UTC)
    frames = [
        _frame(
            "session",
            session_start,
            user_ids[session_user],
            session_id,
            platform=platform[session_user],
        ),
        _frame(
            "exposure",
            exposure_time[~is_error],
            user_ids[exposure_user[~is_error]],
            session_id[exposure_session[~is_error]],
            variant=assigned[exposure_user[~is_error]],
            placement=placement[exposure_user[~is_error]],
            latency_ms=latency[~is_error],
            request_id=np.char.add("r", np.flatnonzero(~is_error).astype(str)),
        ),
        _frame(
            "error",
            exposure_time[is_error],
            user_ids[exposure_user[is_error]],
            session_id[exposure_session[is_error]],
            variant=assigned[exposure_user[is_error]],
            placement=placement[exposure_user[is_error]],
        ),
        _frame(
            "click",
            exposure_time[clicked] + 20,
            user_ids[exposure_user[clicked]],
            session_id[exposure_session[clicked]],
            placement=placement[exposure_user[clicked]],
            item_id=clicked_item[clicked].astype(str),
            request_id=np.char.add("r", np.flatnonzero(clicked).astype(str)),
        ),
        _frame(
            "add_to_cart",
            session_start[session_cart] + 300,
            user_ids[session_user[session_cart]],
            session_id[session_cart],
        ),
        _frame(
            "purchase",
            session_start[session_purchase] + 400,
            user_ids[session_user[session_purchase]],
            session_id[session_purchase],
            item_id=purchase_item[session_purchase].astype(str),
            order_id=np.char.add("o", np.flatnonzero(session_purchase).astype(str)),
            revenue=np.round(order_value[session_purchase], 2),
        ),
        _frame(
            "return",
            return_time[returned],
            user_ids[session_user[returned]],
            None,
            order_id=np.char.add("o", np.flatnonzero(returned).astype(str)),
            item_id=purchase_item[returned].astype(str),
        ),
    ]
    if faults.bots:
        frames.append(_bot_frame(faults.bots, horizon, salt, variants, rng))
    events = pl.concat(frames, how="diagonal_relaxed")
    events = events.with_columns(
        (pl.lit(start) + pl.duration(microseconds=(pl.col("offset") * 1e6).cast(pl.Int64)))
        .cast(pl.Datetime("us", "UTC"))
        .alias("ts"),
    ).drop("offset")
    events = _inject_faults(events, faults, start, rng)
    events = events.with_columns(pl.format("e{}", pl.int_range(pl.len())).alias("event_id"))
    ordered = [
        "event_id",
        "ts",
        "user_id",
        "session_id",
        "event_type",
        "variant",
        "placement",
        "platform",
        "item_id",
        "request_id",
        "order_id",
        "revenue",
        "latency_ms",
    ]
    for name in ordered:
        if name not in events.columns:
            events = events.with_columns(pl.lit(None, dtype=pl.String).alias(name))
    logger.info("simulated %d events for %d users", events.height, n)
    return events.select(ordered).sort("ts")


def _frame(event_type, offsets, users, sessions, **columns) -> pl.DataFrame:
    data = {"offset": np.asarray(offsets, float), "user_id": users, "event_type": event_type}
    data["session_id"] = sessions if sessions is not None else np.full(len(users), None)
    data.update(columns)
    frame = pl.DataFrame(data)
    return frame.with_columns(pl.col("event_type").cast(pl.String))


def _bot_frame(n_bots, horizon, salt, variants, rng) -> pl.DataFrame:
    """Automated users: one session each, 200 exposures 0.5 s apart."""
    names = list(variants)
    frames = []
    for index in range(n_bots):
        user = f"bot{index:04d}"
        variant = assign_variant(user, salt, names, list(variants.values()))
        start = rng.uniform(0, horizon - 600)
        session = f"sb{index:04d}"
        frames.append(_frame("session", [start], [user], [session], platform=["web"]))
        frames.append(
            _frame(
                "exposure",
                start + 1 + 0.5 * np.arange(200),
                [user] * 200,
                [session] * 200,
                variant=[variant] * 200,
                placement=["home"] * 200,
                latency_ms=rng.lognormal(np.log(45), 0.35, 200),
            )
        )
    return pl.concat(frames, how="diagonal_relaxed")


def _inject_faults(events, faults: EventFaults, start, rng) -> pl.DataFrame:
    day = pl.col("ts").dt.date()
    if faults.missing_day is not None:
        events = events.filter(day != (start + dt.timedelta(days=faults.missing_day)).date())
    if faults.incomplete_day is not None:
        target = (start + dt.timedelta(days=faults.incomplete_day)).date()
        keep = pl.Series(rng.random(events.height) < 0.2)
        events = events.filter((day != target) | keep)
    if faults.duplicate_share > 0:
        sample = events.sample(fraction=faults.duplicate_share, seed=int(rng.integers(2**31)))
        events = pl.concat([events, sample])
    return events


def write_impressions(events: pl.DataFrame, path: str | Path) -> int:
    """Write the exposure rows of `events` as the service's SQLite impression log.

    Returns the number of rows written. The schema is the service's: request_id, ts (ISO-8601
    UTC), user_hash, variant, placement, endpoint, model_version, source, k, items (JSON),
    latency_ms, cold_items.
    """
    exposures = events.filter(pl.col("event_type") == "exposure")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = [
        (
            row["request_id"] or f"req-{row['event_id']}",
            row["ts"].isoformat(),
            row["user_id"],
            row["variant"],
            row["placement"],
            "recommend",
            "simulated",
            "model" if row["variant"] != "control" else "popular",
            10,
            "[]",
            row["latency_ms"],
            0,
        )
        for row in exposures.iter_rows(named=True)
    ]
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE impressions (request_id TEXT PRIMARY KEY, ts TEXT, user_hash TEXT, "
            "variant TEXT, placement TEXT, endpoint TEXT, model_version TEXT, source TEXT, "
            "k INTEGER, items TEXT, latency_ms REAL, cold_items INTEGER)"
        )
        connection.executemany(
            "INSERT OR IGNORE INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
    return len(rows)
