"""TrainFlow: load, prepare and split the data, train every model, evaluate, keep a run record.

    start -> load -> split -> tune_hybrid (foreach grid point) -> select -> branch_models
          -> train (foreach model) -> join -> register_candidate -> end

Each run keeps as artifacts: the config, the data manifest, the drop and split reports, every
model's weights and the metrics table
(`Flow("TrainFlow").latest_successful_run.data.metrics`). The end step also writes
`reports/<run id>/` and a card with a bar chart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from metaflow import FlowSpec, Parameter, card, current, step

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.flow_utils import setup_logging, user_errors  # noqa: E402

# Below this many test users the end step warns that the metrics are noisy. The threshold is
# a rule of thumb, not a computed bound.
MIN_RELIABLE_TEST_USERS = 100

# Small artifacts set before the branches and never changed inside them.
UNCHANGED_ARTIFACTS = [
    "config_yaml",
    "versions",
    "commit",
    "manifest",
    "drops",
    "notes",
    "synthetic",
    "dataset_name",
    "split_report",
]


class TrainFlow(FlowSpec):
    """Train and evaluate BookRecs recommenders on one time-split protocol."""

    dataset = Parameter(
        "dataset",
        default="",
        help="Input: demo, goodreads, prepared or custom (default: the config's, else demo).",
    )
    data_dir = Parameter("data-dir", default="", help="Folder with the input files.")
    config_file = Parameter(
        "config", default="", help="YAML file with a TrainConfig; command-line values override it."
    )
    seed = Parameter(
        "seed", default=None, type=int, help="Seed of every random choice (default: config, 42)."
    )
    models = Parameter(
        "models", default="", help="Comma-separated model names (default: all in the config)."
    )
    demo_size = Parameter(
        "demo-size", default="", help="Demo data size: small or full (default: config, small)."
    )
    tune = Parameter("tune", default=True, type=bool, help="Tune the hybrid on a validation split.")
    reports_dir = Parameter("reports-dir", default="reports", help="Where run reports are written.")
    register = Parameter(
        "register",
        default=True,
        type=bool,
        help="Save the serving candidate into the BentoML model store ($BENTOML_HOME).",
    )

    @step
    def start(self):
        """Validate the config and record package versions and the git commit."""
        from bookrecs.config import TrainConfig, read_config_file
        from bookrecs.exceptions import ConfigError
        from bookrecs.runs import check_config, git_commit, package_versions

        setup_logging()
        with user_errors("start"):
            values = read_config_file(self.config_file) if self.config_file else {}
            if self.dataset:
                values["dataset"] = self.dataset
            if self.seed is not None:
                values["seed"] = self.seed
            if self.data_dir:
                values["data_dir"] = str(Path(self.data_dir).resolve())
            if self.models:
                values["models"] = [name.strip() for name in self.models.split(",")]
            if self.demo_size:
                values["demo"] = {**values.get("demo", {}), "size": self.demo_size}
            self.config = TrainConfig.from_dict(values)
            check_config(self.config)
            if Path(self.reports_dir).exists() and not Path(self.reports_dir).is_dir():
                raise ConfigError(
                    f"--reports-dir {self.reports_dir} is a file: pass a folder for run reports"
                )
        self.config_yaml = self.config.to_yaml()
        self.versions = package_versions()
        self.commit = git_commit()
        print(f"run {current.run_id}: dataset={self.config.dataset} seed={self.config.seed}")

        self.next(self.load)

    @step
    def load(self):
        """Read and validate the input, then prepare it by the protocol."""
        from bookrecs.data.load import load_dataset
        from bookrecs.data.prepare import prepare

        setup_logging()
        with user_errors("load"):
            dataset = load_dataset(self.config)
            self.prepared = prepare(
                dataset, self.config.protocol, show_progress=self.config.show_progress
            )
        self.synthetic = dataset.synthetic
        self.dataset_name = dataset.name
        self.manifest = dataset.manifest_records()
        self.drops = dataset.drops.to_records()
        self.notes = list(dataset.notes)
        print(f"dataset {dataset.name}: {dataset.interactions.height:,} interactions")
        print(str(dataset.drops))
        for note in self.notes:
            print(f"note: {note}")

        self.next(self.split)

    @step
    def split(self):
        """Split by time and index users and items for the models."""
        from bookrecs.interactions import TrainData
        from bookrecs.split import make_split

        setup_logging()
        with user_errors("split"):
            split = make_split(self.prepared, self.config.protocol)
        self.prepared = None  # the split keeps what later steps need
        self.split_data = split
        self.split_report = split.report.to_markdown()
        self.data = TrainData.from_split(split)
        print(self.split_report)

        self.grid = self._tuning_grid()
        self.next(self.tune_hybrid, foreach="grid")

    def _tuning_grid(self) -> list[dict]:
        from bookrecs.tuning import param_grid

        if self.tune and "lightfm" in self.config.models:
            return param_grid("lightfm")
        return [{}]  # one empty grid point: nothing to tune

    @step
    def tune_hybrid(self):
        """Fit the hybrid with one grid point on a validation split carved from train."""
        from bookrecs.runs import tune_point

        setup_logging()
        self.point = self.input
        self.validation_row = None
        if self.point:
            with user_errors("tune_hybrid"):
                self.validation_row = tune_point(
                    "lightfm", self.point, self.split_data, self.config
                )

        self.next(self.select)

    @step
    def select(self, inputs):
        """Keep the best hyperparameters on validation NDCG@10."""
        import pandas as pd

        from bookrecs.tuning import select_best

        self.merge_artifacts(inputs, include=UNCHANGED_ARTIFACTS)
        # Branches re-save what they read, so large objects are taken from one branch instead.
        self.config, self.data, self.split_data = (
            inputs[0].config,
            inputs[0].data,
            inputs[0].split_data,
        )
        rows = [inp.validation_row for inp in inputs if inp.validation_row is not None]
        self.tuned_params: dict[str, dict] = {}
        self.validation_table = pd.DataFrame(rows)
        if rows:
            best, self.validation_table = select_best(rows)
            self.tuned_params["lightfm"] = best
            print(f"chosen lightfm parameters: {best}")

        self.next(self.branch_models)

    @step
    def branch_models(self):
        """Start one training task per model."""
        from bookrecs.exceptions import ConfigError

        self.model_names = list(self.config.models)
        if self.data.books is None and "content" in self.model_names:
            self.model_names.remove("content")
            print("content model skipped: the input has no book metadata")
        if not self.model_names:
            with user_errors("branch_models"):
                raise ConfigError(
                    "no model left to train: content needs book metadata; add another model "
                    "with --models, e.g. --models popular,lightfm"
                )

        self.next(self.train, foreach="model_names")

    @step
    def train(self):
        """Fit one model, evaluate it on test and check it reloads to the same output."""
        from bookrecs.runs import train_and_evaluate

        setup_logging()
        self.model_name = self.input
        with user_errors(f"train {self.model_name}"):
            self.result = train_and_evaluate(
                self.model_name,
                self.data,
                self.split_data.test,
                self.config,
                params=self.tuned_params.get(self.model_name),
            )
        print(self.result.row())

        self.next(self.join)

    @step
    def join(self, inputs):
        """Gather one metrics table and every model's weights; pick the serving candidate."""
        from bookrecs.config import TrainConfig
        from bookrecs.evaluate import metrics_table
        from bookrecs.promotion import choose_candidate

        self.merge_artifacts(inputs, include=[*UNCHANGED_ARTIFACTS, "tuned_params"])
        self.config = TrainConfig.from_yaml(self.config_yaml)
        self.split_data = inputs[0].split_data
        results = [inp.result for inp in inputs]
        self.metrics = metrics_table([result.row() for result in results])
        self.model_weights = {result.name: result.weights for result in results}
        self.model_params = {result.name: result.params for result in results}
        self.timings = {
            result.name: {"fit_seconds": result.fit_seconds, "evaluate": result.evaluate_seconds}
            for result in results
        }
        candidate = choose_candidate(self.metrics, self.config.promotion)
        self.candidate, self.candidate_reason = candidate.model, candidate.reason

        self.next(self.register_candidate)

    @step
    def register_candidate(self):
        """Export the candidate's serving bundle into the model store.

        The first stored version is also promoted, so a fresh service has a model to serve.
        Later versions wait for `make promote RUN=<run id>` after a person reviews them.
        """
        from flows.registration import register_candidate

        setup_logging()
        self.model_tag = None
        if self.register and self.candidate:
            with user_errors("register_candidate"):
                self.model_tag, promoted = register_candidate(
                    self.candidate,
                    self.model_weights[self.candidate],
                    self.split_data,
                    run_id=str(current.run_id),
                    metrics=self.metrics,
                )
            action = "promoted it (first version)" if promoted else "not promoted"
            print(f"saved {self.candidate} as {self.model_tag}; {action}")

        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        """Write the run reports and the card, and print the metrics table."""
        from metaflow.cards import Image, Markdown, Table

        from bookrecs.runs import (
            input_summary,
            markdown_table,
            metrics_bar_chart,
            write_run_reports,
        )

        summary = input_summary(self.dataset_name, self.notes, self.drops)
        dest = write_run_reports(
            Path(self.reports_dir) / str(current.run_id),
            self.metrics,
            config=self.config,
            manifest=self.manifest,
            split_report=f"{summary}\n{self.split_report}",
            extra={"versions": self.versions, "commit": self.commit, "drops": self.drops},
            synthetic=self.synthetic,
        )
        label = " (synthetic demo data)" if self.synthetic else ""
        current.card.append(Markdown(f"# TrainFlow run {current.run_id}{label}"))
        current.card.append(Image.from_matplotlib(metrics_bar_chart(self.metrics)))
        current.card.append(Table.from_dataframe(self.metrics.round(4)))
        current.card.append(Markdown(f"**Serving candidate:** {self.candidate_reason}"))
        current.card.append(Markdown(summary))
        current.card.append(Markdown(self.split_report))

        print(f"\nMetrics{label}, run {current.run_id}:\n")
        print(markdown_table(self.metrics))
        print(f"\n{self.candidate_reason}")
        test_users = int(self.metrics["n_users"].max())
        if test_users < MIN_RELIABLE_TEST_USERS:
            warning = (
                f"only {test_users} test users: metrics this small are noisy, so compare models "
                "on a larger input before promoting one"
            )
            print(f"warning: {warning}")
            current.card.append(Markdown(f"**Warning:** {warning}"))
        print(f"reports: {dest}")


if __name__ == "__main__":
    TrainFlow()
