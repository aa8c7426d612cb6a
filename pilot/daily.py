"""Daily rollback check: the plan's rollback criteria on cumulative data, one row per day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from pilot.checks import day_bounds, run_checks
from pilot.plan import PilotPlan
from pilot.readout import load_events, rollback_section
from pilot.sizing import summarise_plan
from pilot.totals import user_totals


def check_daily(
    plan: PilotPlan,
    events_paths: list[str | Path],
    impressions_path: str | Path | None = None,
    as_of: dt.date | None = None,
    days: int = 7,
) -> list[dict]:
    """Evaluate the rollback criteria on cumulative data through each of the last `days` days.

    The data checks run once, through the last day. Each row then uses the clean events from
    the first pilot day through its day. Returns one dict per day with keys day, users (per
    variant), criteria (as in `pilot.readout.rollback_section`) and roll_back (any criterion
    triggered that day).
    """
    events, report = load_events(events_paths, impressions_path)
    end = summarise_plan(plan).end_date
    if as_of is not None:
        end = min(end, as_of)
    observed_last = events["ts"].max()
    if observed_last is not None:
        end = min(end, observed_last.date())
    clean, _ = run_checks(events, plan, end, report)
    first = max(plan.start_date, end - dt.timedelta(days=days - 1))

    rows = []
    day = first
    while day <= end:
        _, stop = day_bounds(plan, day)
        totals, latencies = user_totals(clean.filter(pl.col("ts") < stop), plan.attribution)
        criteria = rollback_section(totals, latencies, plan)
        users = {name: totals.filter(pl.col("variant") == name).height for name in plan.variants}
        rows.append(
            {
                "day": str(day),
                "users": users,
                "criteria": criteria,
                "roll_back": any(entry["triggered"] for entry in criteria),
            }
        )
        day += dt.timedelta(days=1)
    return rows


def format_daily(rows: list[dict]) -> str:
    """Render the daily rows as a Markdown table and a closing recommendation."""
    if not rows:
        return "No pilot day has data yet."
    metrics = [entry["metric"] for entry in rows[0]["criteria"]]
    lines = [
        "| day | users | " + " | ".join(metrics) + " | recommendation |",
        "|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for row in rows:
        cells = []
        for entry in row["criteria"]:
            if not entry["checked"]:
                cells.append("not checked")
            else:
                state = "TRIGGERED" if entry["triggered"] else "ok"
                cells.append(f"{state} ({entry['degradation_lower_bound']:+.3g})")
        users = ", ".join(f"{name} {count:,}" for name, count in row["users"].items())
        recommendation = "roll back" if row["roll_back"] else "continue"
        lines.append(f"| {row['day']} | {users} | " + " | ".join(cells) + f" | {recommendation} |")
    last = rows[-1]
    verdict = "ROLL BACK" if last["roll_back"] else "continue the pilot"
    lines += ["", f"Recommendation on {last['day']}: {verdict}"]
    lines.append(
        "Each cell shows the one-sided lower confidence bound of the degradation, in the "
        "criterion's scale; a criterion triggers when the bound exceeds its threshold."
    )
    return "\n".join(lines)
