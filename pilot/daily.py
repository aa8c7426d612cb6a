"""Daily rollback check: the plan's rollback criteria on cumulative data, one row per day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pilot.checks import run_checks
from pilot.plan import PilotPlan
from pilot.readout import load_events, rollback_section
from pilot.sizing import summarise_plan
from pilot.totals import user_totals


def check_daily(
    plan: PilotPlan,
    events_paths: list[str | Path],
    impressions_path: str | Path | None = None,
    as_of: dt.date | None = None,
) -> list[dict]:
    """Evaluate the rollback criteria on data from the first pilot day through each day.

    Returns one dict per day with keys day, users (per variant), criteria (as in
    `pilot.readout.rollback_section`) and roll_back (any criterion triggered that day).
    """
    events, _ = load_events(events_paths, impressions_path)
    end = summarise_plan(plan).end_date
    if as_of is not None:
        end = min(end, as_of)
    observed_last = events["ts"].max()
    if observed_last is not None:
        end = min(end, observed_last.date())

    rows = []
    day = plan.start_date
    while day <= end:
        clean, _ = run_checks(events, plan, day)
        totals, latencies = user_totals(clean, plan.attribution)
        criteria = rollback_section(totals, latencies, plan)
        users = {name: totals.filter(totals["variant"] == name).height for name in plan.variants}
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
