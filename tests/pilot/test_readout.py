"""Readout on hand-built logs with known totals, on an impression log and on simulated pilots."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest
import yaml

from bookrecs.assignment import assign_variant
from bookrecs.exceptions import DataError
from pilot.checks import run_checks
from pilot.cli import main
from pilot.events import conform, read_events, read_impressions
from pilot.plan import DEFAULT_PLAN, PilotPlan
from pilot.readout import DO_NOT_SHIP, KEEP_RUNNING, ROLL_BACK, SHIP, run_readout, write_readout
from pilot.simulate import EventFaults, simulate_events
from pilot.totals import user_totals

START = dt.date(2026, 12, 7)


def _plan(**changes) -> PilotPlan:
    values = yaml.safe_load(DEFAULT_PLAN.read_text())
    values.update(
        {
            "start_date": str(START),
            "design": {"duration_weeks": 1},
            "traffic": {"daily_users": 400},
            "guardrails": [
                {"metric": "conversion", "margin": 0.05},
                {"metric": "p95_latency_ms", "margin": 0.10},
                {"metric": "error_rate", "margin": 0.004, "margin_type": "absolute"},
            ],
        }
    )
    values.update(changes)
    return PilotPlan.model_validate(values)


def _users(plan: PilotPlan, variant: str, count: int, prefix: str = "u") -> list[str]:
    names, weights = list(plan.variants), list(plan.variants.values())
    found = []
    index = 0
    while len(found) < count:
        user = f"{prefix}{index}"
        if assign_variant(user, plan.salt, names, weights) == variant:
            found.append(user)
        index += 1
    return found


def _ts(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 7 + day, hour, minute, second, tzinfo=dt.UTC)


def _event(ts, user, kind, session=None, **columns) -> dict:
    return {"ts": ts, "user_id": user, "event_type": kind, "session_id": session, **columns}


def _frame(rows: list[dict]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None), "test rows")


@pytest.fixture(scope="module")
def handmade():
    """Two clean users per arm plus one case of every data fault, on days 0 and 2 (day 1 empty)."""
    # Day 2 has few events by design, so the incomplete-day rule is relaxed here.
    plan = _plan(data_checks={"min_day_share": 0.01})
    c1, c2, c_mixed = _users(plan, "control", 3)
    t1, t2, t_bot = _users(plan, "treatment", 3)
    wrong = _users(plan, "treatment", 1, prefix="w")[0]
    rows = [
        # t1: block click on b1 then purchase of b1 (attributed), next day an unattributed one.
        _event(_ts(0, 10), t1, "session", "s1", platform="web", event_id="1"),
        _event(
            _ts(0, 10, 0, 5),
            t1,
            "exposure",
            "s1",
            variant="treatment",
            placement="home",
            latency_ms=40.0,
            request_id="r1",
        ),
        _event(_ts(0, 10, 0, 30), t1, "click", "s1", item_id="b1", placement="home"),
        _event(_ts(0, 10, 5), t1, "purchase", "s1", item_id="b1", order_id="o1", revenue=20.0),
        _event(_ts(2, 9), t1, "session", "s2", platform="web"),
        _event(
            _ts(2, 9, 0, 5),
            t1,
            "exposure",
            "s2",
            variant="treatment",
            placement="home",
            latency_ms=50.0,
        ),
        _event(_ts(2, 9, 10), t1, "purchase", "s2", item_id="b9", order_id="o2", revenue=10.0),
        # t2: one session with two exposures and an error, no purchase.
        _event(_ts(0, 11), t2, "session", "s3", platform="ios"),
        _event(
            _ts(0, 11, 0, 5),
            t2,
            "exposure",
            "s3",
            variant="treatment",
            placement="home",
            latency_ms=60.0,
        ),
        _event(
            _ts(0, 11, 0, 10),
            t2,
            "exposure",
            "s3",
            variant="treatment",
            placement="home",
            latency_ms=70.0,
        ),
        _event(_ts(0, 11, 0, 15), t2, "error", "s3", variant="treatment", placement="home"),
        # c1: click on b2 but buys b3 (not attributed with same_item), returns the order.
        _event(_ts(0, 12), c1, "session", "s4", platform="web"),
        _event(
            _ts(0, 12, 0, 5),
            c1,
            "exposure",
            "s4",
            variant="control",
            placement="home",
            latency_ms=30.0,
        ),
        _event(_ts(0, 12, 1), c1, "click", "s4", item_id="b2", placement="home"),
        _event(_ts(0, 12, 2), c1, "add_to_cart", "s4", item_id="b3"),
        _event(_ts(0, 12, 5), c1, "purchase", "s4", item_id="b3", order_id="o3", revenue=15.0),
        _event(_ts(2, 8), c1, "return", None, item_id="b3", order_id="o3"),
        # c2: a session before its first exposure session (not counted) and the exposed one.
        _event(_ts(0, 7), c2, "session", "s5", platform="android"),
        _event(_ts(0, 13), c2, "session", "s6", platform="android"),
        _event(
            _ts(0, 13, 0, 5),
            c2,
            "exposure",
            "s6",
            variant="control",
            placement="book_page",
            latency_ms=35.0,
        ),
        # Faults.
        _event(_ts(0, 10), t1, "session", "s1", platform="web", event_id="1"),  # duplicate id
        _event(_ts(0, 10, 0, 30), t1, "click", "s1", item_id="b1", placement="home"),  # copy
        _event(_ts(-3, 10), c1, "session", "s0", platform="web"),  # before the start
        _event(_ts(0, 14), c1, "exposure", "nope", variant="control", placement="home"),
        _event(_ts(0, 15), c_mixed, "session", "s7", platform="web"),
        _event(_ts(0, 15, 0, 5), c_mixed, "exposure", "s7", variant="control", placement="home"),
        _event(_ts(0, 15, 0, 9), c_mixed, "exposure", "s7", variant="treatment", placement="home"),
        _event(_ts(0, 16), wrong, "session", "s8", platform="web"),
        _event(_ts(0, 16, 0, 5), wrong, "exposure", "s8", variant="control", placement="home"),
        _event(_ts(0, 17), t_bot, "session", "s9", platform="web"),
        *[
            _event(
                _ts(0, 17, 0, 1 + second),
                t_bot,
                "exposure",
                "s9",
                variant="treatment",
                placement="home",
            )
            for second in range(40)
        ],
        _event(_ts(0, 18), c1, "purchase", "s4", order_id="o9"),  # no revenue
        _event(_ts(0, 18), c1, "scroll", "s4"),  # unknown type
    ]
    return plan, _frame(rows), {"c1": c1, "c2": c2, "t1": t1, "t2": t2}


def test_checks_count_each_fault(handmade):
    plan, events, _ = handmade
    clean, report = run_checks(events, plan, START + dt.timedelta(days=6))
    assert report.invalid_rows == {
        "unknown event_type": 1,
        "purchase without order_id or positive revenue": 1,
    }
    assert report.outside_dates == 1
    assert report.duplicates == 2
    assert report.missing_days == ["2026-12-08"]
    assert report.incomplete_days == []
    assert report.requests_without_session == 1
    assert report.automated_users == 1
    assert report.automated_users_by_variant == {"treatment": 1}
    assert report.automated_events == 41
    assert report.mixed_variant_users == 1
    assert report.assignment_mismatch_users == 1
    assert report.rows_out == clean.height == 20


def test_totals_known_values(handmade):
    plan, events, users = handmade
    clean, _ = run_checks(events, plan, START + dt.timedelta(days=6))
    totals, latencies = user_totals(clean, plan.attribution)
    rows = {row["user_id"]: row for row in totals.iter_rows(named=True)}
    assert set(rows) == set(users.values())

    t1 = rows[users["t1"]]
    assert (t1["sessions"], t1["exposures"], t1["clicks"]) == (2, 2, 1)
    assert (t1["orders"], t1["revenue"], t1["attributed_revenue"]) == (2, 30.0, 20.0)
    assert t1["purchase_sessions"] == 2
    t2 = rows[users["t2"]]
    assert (t2["exposures"], t2["errors"], t2["requests"], t2["converted"]) == (2, 1, 3, 0)
    c1 = rows[users["c1"]]
    assert (c1["revenue"], c1["attributed_revenue"], c1["returned_orders"]) == (15.0, 0.0, 1)
    assert c1["add_to_carts"] == 1
    c2 = rows[users["c2"]]
    assert c2["sessions"] == 1
    assert c2["placement"] == "book_page"
    assert c2["platform"] == "android"
    assert sorted(latencies["latency_ms"].to_list()) == [30.0, 35.0, 40.0, 50.0, 60.0, 70.0]


def test_attribution_hours_window(handmade):
    plan, events, users = handmade
    loose = _plan(
        attribution={"window": "hours", "hours": 48, "same_item": False},
        data_checks={"min_day_share": 0.01},
    )
    clean, _ = run_checks(events, loose, START + dt.timedelta(days=6))
    totals, _ = user_totals(clean, loose.attribution)
    rows = {row["user_id"]: row for row in totals.iter_rows(named=True)}
    # Any item within 48 h of a click: t1's second purchase (day 2 09:10, click day 0 10:00)
    # is 47 h 10 min after the click, and c1's purchase of b3 follows the click on b2.
    assert rows[users["t1"]]["attributed_revenue"] == 30.0
    assert rows[users["c1"]]["attributed_revenue"] == 15.0


def _write_impression_log(path: Path, rows: list[tuple]) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE impressions (request_id TEXT PRIMARY KEY, ts TEXT, user_hash TEXT, "
            "variant TEXT, placement TEXT, endpoint TEXT, model_version TEXT, source TEXT, "
            "k INTEGER, items TEXT, latency_ms REAL, cold_items INTEGER)"
        )
        connection.executemany(
            "INSERT INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )


def test_impression_log_maps_to_sessions(tmp_path):
    plan = _plan()
    control = _users(plan, "control", 2)
    treatment = _users(plan, "treatment", 3)
    items = json.dumps([{"item_id": "b1", "position": 1, "score": 0.9, "reason": "popular"}])
    impressions = [
        (
            "q1",
            "2026-12-07T10:00:05Z",
            control[0],
            "control",
            "home",
            "recommend",
            "v1",
            "popular",
            10,
            items,
            12.5,
            0,
        ),
        (
            "q2",
            "2026-12-07T10:20:00+00:00",
            control[0],
            "control",
            "home",
            "recommend",
            "v1",
            "popular",
            10,
            items,
            14.0,
            0,
        ),
        (
            "q3",
            "2026-12-07T11:00:05Z",
            control[1],
            "control",
            "home",
            "recommend",
            "v1",
            "popular",
            10,
            items,
            13.0,
            0,
        ),
        (
            "q4",
            "2026-12-07T12:00:05Z",
            treatment[0],
            "treatment",
            "home",
            "recommend",
            "v2",
            "model",
            10,
            items,
            25.0,
            2,
        ),
        # 40 minutes after the session start: beyond the 30-minute timeout, so unmapped.
        (
            "q5",
            "2026-12-07T13:40:00Z",
            treatment[1],
            "treatment",
            "home",
            "recommend",
            "v2",
            "model",
            10,
            items,
            26.0,
            1,
        ),
        (
            "q6",
            "2026-12-07T14:00:05Z",
            treatment[2],
            "treatment",
            "home",
            "recommend",
            "v2",
            "model",
            10,
            items,
            27.0,
            0,
        ),
    ]
    log = tmp_path / "impressions.sqlite"
    _write_impression_log(log, impressions)
    sessions = [
        _event(_ts(0, 10), control[0], "session", "a", platform="web"),
        _event(_ts(0, 11), control[1], "session", "b", platform="web"),
        _event(_ts(0, 12), treatment[0], "session", "c", platform="ios"),
        _event(_ts(0, 12, 1), treatment[0], "click", "c", item_id="b1", placement="home"),
        _event(
            _ts(0, 12, 3), treatment[0], "purchase", "c", item_id="b1", order_id="o1", revenue=12.0
        ),
        _event(_ts(0, 13), treatment[1], "session", "d", platform="ios"),
        # An exposure row in the event log is replaced by the impression log.
        _event(_ts(0, 13, 0, 1), treatment[1], "exposure", "d", variant="treatment"),
        _event(_ts(0, 14), treatment[2], "session", "e", platform="web"),
    ]
    events_path = tmp_path / "events.csv"
    frame = pl.DataFrame(sessions, infer_schema_length=None)
    frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(events_path)

    exposures = read_impressions(log)
    assert exposures.height == 6
    assert exposures["user_id"].to_list()[0] == control[0]
    assert exposures["latency_ms"].to_list()[0] == 12.5

    out = tmp_path / "report"
    code = main(
        [
            "readout",
            "--plan",
            str(_plan_file(tmp_path, plan)),
            "--events",
            str(events_path),
            "--impressions",
            str(log),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads((out / "readout.json").read_text())
    assert result["checks"]["exposure_rows_replaced"] == 1
    assert result["checks"]["requests_without_session"] == 1
    assert result["users"] == {"control": 2, "treatment": 2}
    assert result["status"] == "peek"
    # Treatment: 12.0 of revenue over two sessions; control: no revenue.
    assert result["primary"]["treatment"] == pytest.approx(6.0)
    assert result["primary"]["control"] == 0.0
    assert "PEEK" in (out / "readout.md").read_text()


def test_impression_log_missing_table(tmp_path):
    log = tmp_path / "empty.sqlite"
    sqlite3.connect(log).close()
    with pytest.raises(DataError, match="no table 'impressions'"):
        read_impressions(log)


def test_events_missing_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("ts,user\n2026-12-07T10:00:00Z,u1\n")
    with pytest.raises(DataError, match="user_id"):
        read_events(path)


def _plan_file(tmp_path: Path, plan: PilotPlan) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json"), sort_keys=False))
    return path


def _simulate(plan: PilotPlan, seed: int, **options) -> pl.DataFrame:
    return simulate_events(
        n_users=4_000,
        start_date=START,
        days=7,
        salt=plan.salt,
        variants=plan.variants,
        seed=seed,
        **options,
    )


def test_strong_effect_ships():
    plan = _plan()
    readout = run_readout(plan, _simulate(plan, seed=2, effect=0.6))
    assert readout.status == "final"
    assert readout.decision == SHIP, readout.reasons
    low, high = readout.primary["relative_ci"]
    assert low < 0.6 < high
    assert not readout.srm["mismatch"]


def test_peek_makes_no_decision():
    plan = _plan()
    readout = run_readout(plan, _simulate(plan, seed=2, effect=0.6), as_of=START)
    assert readout.status == "peek"
    assert readout.decision == KEEP_RUNNING
    assert readout.primary is not None


def test_aa_run_does_not_ship():
    plan = _plan()
    readout = run_readout(plan, _simulate(plan, seed=3))
    assert readout.status == "final"
    assert readout.decision == DO_NOT_SHIP
    assert readout.primary["p_value"] > plan.alpha


def test_srm_fault_blocks_decision():
    plan = _plan()
    readout = run_readout(plan, _simulate(plan, seed=3, effect=0.6, srm=0.15))
    assert readout.srm["mismatch"]
    assert readout.decision == DO_NOT_SHIP
    assert "sample ratio mismatch" in readout.reasons[0]
    dimensions = {row["dimension"] for row in readout.srm["breakdown"]}
    assert {"placement", "platform", "first_day"} <= dimensions


def test_latency_breach_rolls_back():
    plan = _plan()
    events = _simulate(plan, seed=4, effect=0.6, breach={"p95_latency_ms": 0.5})
    readout = run_readout(plan, events)
    assert readout.decision == ROLL_BACK
    latency = next(row for row in readout.rollback if row["metric"] == "p95_latency_ms")
    assert latency["triggered"]
    guardrail = next(row for row in readout.guardrails if row["metric"] == "p95_latency_ms")
    assert not guardrail["passed"]


def test_simulated_bots_and_duplicates_counted():
    plan = _plan()
    events = _simulate(plan, seed=5, faults=EventFaults(duplicate_share=0.01, bots=5))
    checks = run_readout(plan, events).checks
    assert checks.automated_users == 5
    assert checks.automated_events >= 5 * 201
    # The log has H original rows plus 1 % of H repeated, so H = height / 1.01.
    assert abs(checks.duplicates - 0.01 * events.height / 1.01) <= 1


def test_simulated_missing_days_counted():
    plan = _plan()
    events = _simulate(plan, seed=6, faults=EventFaults(missing_day=2, incomplete_day=4))
    checks = run_readout(plan, events).checks
    assert checks.missing_days == ["2026-12-09"]
    assert checks.incomplete_days == ["2026-12-11"]
    assert checks.incomplete_day_events > 0


def test_readout_files_written(tmp_path):
    plan = _plan()
    readout = run_readout(plan, _simulate(plan, seed=2, effect=0.6))
    json_path, markdown_path = write_readout(readout, tmp_path)
    assert json.loads(json_path.read_text())["decision"] == SHIP
    text = markdown_path.read_text()
    assert "## Sample ratio mismatch" in text
    assert "Multiple-testing policy" in text
    assert "same session" in text


def test_cli_simulate_then_check_daily(tmp_path, capsys):
    plan = _plan()
    plan_path = _plan_file(tmp_path, plan)
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            "--plan",
            str(plan_path),
            "--out",
            str(out),
            "--users",
            "3000",
            "--days",
            "7",
            "--effect",
            "0.1",
            "--guardrail-breach",
            "error_rate=0.02",
            "--impressions",
            "--format",
            "csv",
        ]
    )
    assert code == 0
    assert (out / "impressions.sqlite").is_file()
    code = main(
        [
            "check-daily",
            "--plan",
            str(plan_path),
            "--events",
            str(out / "events.csv"),
            "--impressions",
            str(out / "impressions.sqlite"),
        ]
    )
    output = capsys.readouterr().out
    assert code == 3, output
    assert "Recommendation on 2026-12-13: ROLL BACK" in output


def test_service_impression_log_read(tmp_path):
    from bookrecs.impressions import Impression, ShownItem, connect, hash_user
    from bookrecs.impressions import write_impressions as write_service_rows

    plan = _plan()
    raw_ids = _users(plan, "control", 3, prefix="reader-") + _users(
        plan, "treatment", 3, prefix="reader-"
    )
    variants = ["control"] * 3 + ["treatment"] * 3
    hashes = [hash_user(user, "bookrecs") for user in raw_ids]
    shown = [ShownItem("b1", 1, 0.9, "popular")]
    rows = [
        Impression(
            f"q{index}",
            user_hash,
            variant,
            "home",
            "recommend",
            "v1",
            "popular" if variant == "control" else "model",
            10,
            shown,
            20.0 + index,
            0,
            ts=f"2026-12-07T1{index}:00:05.000+00:00",
        )
        for index, (user_hash, variant) in enumerate(zip(hashes, variants, strict=True))
    ]
    log = tmp_path / "service.sqlite"
    connection = connect(log)
    try:
        assert write_service_rows(connection, rows) == 6
        sessions = [
            _event(_ts(0, 10 + index), user_hash, "session", f"s{index}", platform="web")
            for index, user_hash in enumerate(hashes)
        ]
        # The service keeps its connection open while the readout runs.
        readout = run_readout(plan, _combined(sessions, log))
    finally:
        connection.close()
    assert readout.users == {"control": 3, "treatment": 3}
    assert readout.checks.assignment_check.startswith("skipped")
    assert readout.checks.assignment_mismatch_users == 0
    assert readout.checks.requests_without_session == 0


def _combined(rows: list[dict], log: Path) -> pl.DataFrame:
    from pilot.readout import load_events

    path = log.parent / "events.parquet"
    _frame(rows).write_parquet(path)
    events, _ = load_events([path], log)
    return events


def _latency_plan() -> PilotPlan:
    rollback = {
        "alpha": 0.01,
        "min_users_per_arm": 10,
        "criteria": [
            {"metric": "p95_latency_ms", "threshold": 0.25, "threshold_type": "relative"},
            {"metric": "error_rate", "threshold": 0.005, "threshold_type": "absolute"},
        ],
    }
    return _plan(rollback=rollback)


def test_readout_without_latency_column(tmp_path, capsys):
    plan = _latency_plan()
    events_path = tmp_path / "events.parquet"
    _simulate(plan, seed=2, effect=0.6).drop("latency_ms").write_parquet(events_path)
    out = tmp_path / "readout"
    code = main(
        [
            "readout",
            "--plan",
            str(_plan_file(tmp_path, plan)),
            "--events",
            str(events_path),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "readout.json").read_text())
    latency = next(row for row in report["guardrails"] if row["metric"] == "p95_latency_ms")
    assert latency["passed"] is False
    assert latency["note"].startswith("insufficient data")
    rollback = next(row for row in report["rollback"] if row["metric"] == "p95_latency_ms")
    assert rollback["checked"] is False
    assert rollback["note"].startswith("insufficient data")
    assert report["decision"] == DO_NOT_SHIP
    assert "p95_latency_ms (insufficient data)" in report["reasons"][0]
    assert "insufficient data: 0 control and 0 treatment" in (out / "readout.md").read_text()


def test_readout_without_exposures(tmp_path):
    plan = _latency_plan()
    events = _simulate(plan, seed=2).filter(pl.col("event_type") != "exposure")
    readout = run_readout(plan, events)
    latency = next(row for row in readout.guardrails if row["metric"] == "p95_latency_ms")
    assert latency["note"].startswith("insufficient data")
    ctr = next(row for row in readout.secondary if row["metric"] == "block_ctr")
    assert ctr["note"] == "insufficient data: an arm has no exposures"
    assert ctr["significant_holm"] is False
    _, markdown_path = write_readout(readout, tmp_path)
    assert "| block_ctr (clicks per exposure) | insufficient data" in markdown_path.read_text()
