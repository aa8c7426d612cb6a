"""Command line: `python -m monitoring report [options]`.

Exit status: 0 no drift that calls for retraining, 3 retraining recommended, 4 no decision
(windows too small or empty), 1 the report failed (bad input or config), 2 bad options.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bookrecs.exceptions import BookRecsError
from monitoring.run import DEFAULT_OUT, ReportOptions, run_report

EXIT_ERROR = 1
EXIT_STATUS_HELP = (
    "Exit status: 0 no drift, 3 retraining recommended, 4 windows too small for a decision, "
    "1 error."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring",
        description="Compare a reference window with a current window and decide on retraining.",
        epilog=EXIT_STATUS_HELP,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser(
        "report",
        help="Write the drift report (HTML, summary.json, summary.txt).",
        description="Without window dates, the reference ends at reference_quantile of "
        "date_added (drift.yaml) and the current window runs from there to the last date. "
        "Window starts are inclusive and ends exclusive; dates are ISO-8601, read as UTC.",
        epilog=EXIT_STATUS_HELP,
    )
    report.add_argument(
        "--dataset",
        default="demo",
        choices=["demo", "goodreads", "prepared", "custom"],
        help="Input dataset (default: demo, generated on first use).",
    )
    report.add_argument("--data-dir", help="Folder with the dataset's files.")
    report.add_argument("--seed", type=int, default=42, help="Seed of the demo generator.")
    report.add_argument(
        "--demo-size", default="small", choices=["small", "full"], help="Size of the demo data."
    )
    bounds = {
        "reference-start": "First moment of the reference window (default: first date).",
        "reference-end": "End of the reference window, exclusive (default: the quantile cut).",
        "current-start": "First moment of the current window (default: the reference end).",
        "current-end": "End of the current window, exclusive (default: after the last date).",
    }
    for name, text in bounds.items():
        report.add_argument(f"--{name}", metavar="DATE", help=text)
    report.add_argument("--impressions", metavar="PATH", help="SQLite impression log to check.")
    report.add_argument(
        "--config", metavar="PATH", help="Thresholds (default: monitoring/drift.yaml)."
    )
    report.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"Reports folder (default: {DEFAULT_OUT})."
    )
    report.add_argument(
        "--run-name", help="Subfolder of --out for this report (default: today's UTC date)."
    )
    report.add_argument("--no-html", action="store_true", help="Skip the Evidently HTML report.")
    report.add_argument("--quiet", action="store_true", help="Log warnings only, no progress bars.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    options = ReportOptions(
        dataset=args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        demo_size=args.demo_size,
        reference_start=args.reference_start,
        reference_end=args.reference_end,
        current_start=args.current_start,
        current_end=args.current_end,
        impressions=args.impressions,
        config=args.config,
        out=args.out,
        run_name=args.run_name,
        html=not args.no_html,
        show_progress=not args.quiet,
    )
    try:
        summary, paths = run_report(options)
    except BookRecsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR

    print("\n".join(summary.lines()))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
