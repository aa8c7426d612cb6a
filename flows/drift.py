"""DriftFlow: compare a reference window with a current window and recommend retraining or not.

    start -> load -> check -> report -> end

Every step calls `monitoring` functions, and the flow keeps their results as artifacts:
`summary` (the JSON summary as a dict), `verdict` (no_drift, retrain or insufficient_data),
`retrain_recommended` and `report_paths`. The same options as `python -m monitoring report`
give the same report. The run succeeds whatever the verdict, so schedulers read the `verdict`
artifact, while the command line returns the verdict as its exit status.
"""

from __future__ import annotations

import sys
from pathlib import Path

from metaflow import FlowSpec, Parameter, step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.flow_utils import setup_logging, user_errors  # noqa: E402


class DriftFlow(FlowSpec):
    """Drift report between the training period and later interactions or impressions."""

    dataset = Parameter(
        "dataset", default="demo", help="Input: demo, goodreads, prepared or custom."
    )
    data_dir = Parameter("data-dir", default="", help="Folder with the input files.")
    seed = Parameter("seed", default=42, help="Seed of the demo generator.")
    demo_size = Parameter("demo-size", default="small", help="Demo data size: small or full.")
    reference_start = Parameter("reference-start", default="", help="Reference start (ISO date).")
    reference_end = Parameter("reference-end", default="", help="Reference end, exclusive.")
    current_start = Parameter("current-start", default="", help="Current start (ISO date).")
    current_end = Parameter("current-end", default="", help="Current end, exclusive.")
    impressions = Parameter("impressions", default="", help="SQLite impression log to check.")
    config_file = Parameter(
        "config", default="", help="Thresholds YAML (default: monitoring/drift.yaml)."
    )
    out = Parameter("out", default="monitoring/reports", help="Reports folder.")
    run_name = Parameter(
        "run-name", default="", help="Subfolder of --out (default: today's UTC date)."
    )
    html = Parameter("html", default=True, type=bool, help="Write the Evidently HTML report.")

    @step
    def start(self):
        """Validate the thresholds and collect the options."""
        from monitoring.config import DriftConfig
        from monitoring.run import ReportOptions

        setup_logging()
        with user_errors("start"):
            path = self.config_file or None
            self.drift_config = DriftConfig.from_yaml(path) if path else DriftConfig.from_yaml()
        self.options = ReportOptions(
            dataset=self.dataset,
            data_dir=self.data_dir or None,
            seed=self.seed,
            demo_size=self.demo_size,
            reference_start=self.reference_start or None,
            reference_end=self.reference_end or None,
            current_start=self.current_start or None,
            current_end=self.current_end or None,
            impressions=self.impressions or None,
            config=path,
            out=self.out,
            run_name=self.run_name or None,
            html=self.html,
            show_progress=False,
        )

        self.next(self.load)

    @step
    def load(self):
        """Read the dataset, resolve both windows and read the impression log."""
        from monitoring.impressions import read_impressions
        from monitoring.run import load_input, windows_for

        setup_logging()
        with user_errors("load"):
            self.input_data = load_input(self.options)
            self.windows = windows_for(self.input_data, self.options, self.drift_config)
            path = self.options.impressions
            self.log = read_impressions(path, self.windows[1]) if path else None
        print(f"{self.windows[0]}\n{self.windows[1]}")

        self.next(self.check)

    @step
    def check(self):
        """Run every drift check and decide."""
        from monitoring.drift import analyse

        setup_logging()
        reference, current_window = self.windows
        data = self.input_data
        with user_errors("check"):
            self.drift_summary = analyse(
                data.interactions,
                data.books,
                reference,
                current_window,
                self.drift_config,
                self.log,
            )
        self.drift_summary.notes += data.notes
        self.verdict = self.drift_summary.verdict
        self.retrain_recommended = self.verdict == "retrain"

        self.next(self.report)

    @step
    def report(self):
        """Write the Evidently HTML report, summary.json and summary.txt."""
        from monitoring.run import write_report

        setup_logging()
        with user_errors("report"):
            paths = write_report(
                self.drift_summary, self.input_data, self.drift_config, self.options, self.log
            )
        self.report_paths = {kind: str(path) for kind, path in paths.items()}
        self.summary = self.drift_summary.to_dict()
        self.input_data = None  # the input is re-readable; keep the datastore small

        self.next(self.end)

    @step
    def end(self):
        """Print the verdict and the paths of the outputs."""
        print("\n".join(self.drift_summary.lines()))
        for kind, path in self.report_paths.items():
            print(f"{kind}: {path}")


if __name__ == "__main__":
    DriftFlow()
