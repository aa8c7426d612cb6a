"""Command line of the A/B pilot toolkit: plan, simulate, read out and check a pilot.

Exit codes: 0 success, 2 invalid input (plan, data or arguments), 3 `check-daily` recommends
rolling back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

import polars as pl

from bookrecs.exceptions import BookRecsError
from pilot.plan import DEFAULT_PLAN, PilotPlan, load_plan

logger = logging.getLogger("bookrecs.pilot")

EXIT_INVALID = 2
EXIT_ROLL_BACK = 3


def _load(args: argparse.Namespace) -> PilotPlan:
    plan = load_plan(args.plan)
    history = getattr(args, "history", None)
    if history:
        from pilot.history import estimate_baselines

        plan = plan.with_baselines(estimate_baselines(history, plan.attribution))
    return plan


def command_plan(args: argparse.Namespace) -> int:
    from pilot.sizing import format_summary, plot_power_curve, summarise_plan

    summary = summarise_plan(_load(args))
    print(format_summary(summary))
    path = plot_power_curve(summary, args.png)
    print(f"\nPower curve written to {path}")
    return 0


def command_baselines(args: argparse.Namespace) -> int:
    import yaml

    from pilot.history import estimate_baselines, estimate_cuped_correlation

    plan = load_plan(args.plan)
    baselines = estimate_baselines(args.history, plan.attribution)
    correlation = estimate_cuped_correlation(args.history, plan.primary)
    print(
        f"# CUPED correlation of {plan.primary} between the two halves of the history: "
        f"{correlation:.3f}"
    )
    print(yaml.safe_dump({"baselines": baselines.model_dump(mode="json")}, sort_keys=False))
    return 0


def command_calibrate(args: argparse.Namespace) -> int:
    from pilot.calibrate import calibrate

    plan = load_plan(args.plan)
    result = calibrate(plan, runs=args.runs, lift=args.lift, seed=args.seed)
    print("\n".join(result.lines(plan.alpha)))
    return 0


def command_simulate(args: argparse.Namespace) -> int:
    from pilot.simulate import EventFaults, parse_breach, simulate_events, write_impressions

    plan = load_plan(args.plan)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    faults = EventFaults(
        duplicate_share=args.duplicates,
        bots=args.bots,
        missing_day=args.missing_day,
        incomplete_day=args.incomplete_day,
    )
    events = simulate_events(
        n_users=args.users,
        start_date=plan.start_date,
        days=args.days,
        salt=plan.salt,
        variants=plan.variants,
        control=plan.control,
        effect=args.effect,
        srm=args.srm,
        breach=parse_breach(args.guardrail_breach),
        faults=faults,
        seed=args.seed,
    )
    if args.impressions:
        written = write_impressions(events, out / "impressions.sqlite")
        events = events.filter(pl.col("event_type") != "exposure")
        print(f"wrote {written:,} impressions to {out / 'impressions.sqlite'}")
    events_path = _write(events, out / f"events.{args.format}")
    print(f"wrote {events.height:,} events to {events_path}")
    if args.pre_period_days:
        pre_period = simulate_events(
            n_users=args.users,
            start_date=plan.start_date - dt.timedelta(days=args.pre_period_days),
            days=args.pre_period_days,
            salt=plan.salt,
            variants=plan.variants,
            control=plan.control,
            seed=args.seed,
            period=1,
        )
        pre_period_path = _write(pre_period, out / f"pre_period.{args.format}")
        print(f"wrote {pre_period.height:,} pre-period events to {pre_period_path}")
    if args.history_users:
        history = simulate_events(
            n_users=args.history_users,
            start_date=plan.start_date - dt.timedelta(days=args.days),
            days=args.days,
            salt=plan.salt,
            variants=plan.variants,
            control=plan.control,
            seed=args.seed + 1,
        ).with_columns(pl.lit(None, dtype=pl.String).alias("variant"))
        history_path = _write(history, out / f"history.{args.format}")
        print(f"wrote {history.height:,} history events to {history_path}")
    return 0


def _write(frame: pl.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def command_readout(args: argparse.Namespace) -> int:
    from pilot.readout import readout_from_files, write_readout

    plan = _load(args)
    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    readout = readout_from_files(plan, args.events, args.impressions, as_of, args.pre_period)
    json_path, markdown_path = write_readout(readout, args.out)
    print(markdown_path.read_text())
    print(f"Readout written to {markdown_path} and {json_path}")
    return 0


def command_check_daily(args: argparse.Namespace) -> int:
    from pilot.daily import check_daily, format_daily

    plan = _load(args)
    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    rows = check_daily(plan, args.events, args.impressions, as_of, args.days)
    print(format_daily(rows))
    return EXIT_ROLL_BACK if rows and rows[-1]["roll_back"] else 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m pilot", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at INFO level.")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_plan(sub: argparse.ArgumentParser, history: bool = True) -> None:
        sub.add_argument("--plan", default=str(DEFAULT_PLAN), help="Plan YAML file.")
        if history:
            sub.add_argument(
                "--history",
                help="Historical event log (.csv/.parquet) to estimate baselines from, "
                "replacing the plan's baselines.",
            )

    plan = commands.add_parser("plan", help="Print sample size, duration and MDE tables.")
    add_plan(plan)
    plan.add_argument(
        "--png", default="reports/pilot/power_curve.png", help="Path of the power-curve PNG."
    )
    plan.set_defaults(handler=command_plan)

    baselines = commands.add_parser(
        "baselines", help="Print baselines estimated from history as a plan YAML block."
    )
    baselines.add_argument("--plan", default=str(DEFAULT_PLAN), help="Plan YAML file.")
    baselines.add_argument("--history", required=True, help="Historical event log.")
    baselines.set_defaults(handler=command_baselines)

    calibrate = commands.add_parser(
        "calibrate", help="Measure false-positive rate, power and SRM detection by simulation."
    )
    add_plan(calibrate, history=False)
    calibrate.add_argument("--runs", type=int, default=400, help="Simulated pilots per rate.")
    calibrate.add_argument(
        "--lift", type=float, default=0.2, help="Relative lift the power run is sized for."
    )
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.set_defaults(handler=command_calibrate)

    simulate = commands.add_parser("simulate", help="Write a simulated pilot event log.")
    add_plan(simulate, history=False)
    simulate.add_argument("--out", required=True, help="Output folder.")
    simulate.add_argument("--users", type=int, default=20_000, help="Users before faults.")
    simulate.add_argument("--days", type=int, default=14, help="Pilot days simulated.")
    simulate.add_argument(
        "--effect", type=float, default=0.0, help="Relative lift of the treatment; 0 is an A/A."
    )
    simulate.add_argument(
        "--srm", type=float, default=0.0, help="Share of treatment users lost from the logs."
    )
    simulate.add_argument(
        "--guardrail-breach",
        help="Treatment degradations, e.g. p95_latency_ms=0.3,error_rate=0.01,return_rate=0.5.",
    )
    simulate.add_argument("--bots", type=int, default=0, help="Automated users to add.")
    simulate.add_argument("--duplicates", type=float, default=0.0, help="Share of rows repeated.")
    simulate.add_argument("--missing-day", type=int, help="Pilot day (0-based) with no logs.")
    simulate.add_argument("--incomplete-day", type=int, help="Pilot day keeping 20%% of logs.")
    simulate.add_argument(
        "--impressions",
        action="store_true",
        help="Write exposures to impressions.sqlite (service schema) instead of the events.",
    )
    simulate.add_argument(
        "--history-users", type=int, default=0, help="Also write a pre-pilot history log."
    )
    simulate.add_argument(
        "--pre-period-days",
        type=int,
        default=0,
        help="Also write the same users' events of this many days before the start (CUPED).",
    )
    simulate.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(handler=command_simulate)

    for name, handler, text in (
        ("readout", command_readout, "Write the Markdown and JSON readout."),
        ("check-daily", command_check_daily, "Check the rollback criteria day by day."),
    ):
        sub = commands.add_parser(name, help=text)
        add_plan(sub)
        sub.add_argument("--events", nargs="+", required=True, help="Event logs (.csv/.parquet).")
        sub.add_argument("--impressions", help="Service impression log (SQLite).")
        sub.add_argument("--as-of", help="Last day to include (YYYY-MM-DD).")
        if name == "readout":
            sub.add_argument("--out", default="reports/pilot", help="Output folder.")
            sub.add_argument(
                "--pre-period",
                help="Event log of the same users before the pilot, the CUPED covariate "
                "(used when the plan enables cuped).",
            )
        else:
            sub.add_argument(
                "--days", type=int, default=7, help="Days shown, ending at the last day."
            )
        sub.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except BookRecsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
