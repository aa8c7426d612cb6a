"""Thresholds of the drift report, read from `monitoring/drift.yaml` and validated.

Every class rejects unknown keys, so a misspelt threshold fails at load time instead of being
ignored and silently replaced by its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bookrecs.config import format_validation_error
from bookrecs.exceptions import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("drift.yaml")

CheckName = Literal[
    "user_activity",
    "rating_distribution",
    "is_read_share",
    "item_popularity",
    "new_book_share",
    "new_book_language",
    "new_book_year",
    "new_book_shelves",
    "shown_popularity",
    "shown_coverage",
    "shown_cold_share",
    "fallback_rate",
    "latency_p95",
]


# Column drift methods that Evidently 0.7.23 registers for numerical and categorical columns
# (`evidently.legacy.calculations.stattests.registry`). A test compares these lists with the
# installed Evidently, so an upgrade that renames a method fails there, not in a report.
NumMethod = Literal[
    "anderson",
    "cramer_von_mises",
    "ed",
    "empirical_mmd",
    "es",
    "hellinger",
    "jensenshannon",
    "kl_div",
    "ks",
    "mannw",
    "psi",
    "t_test",
    "wasserstein",
]
CatMethod = Literal[
    "chisquare",
    "fisher_exact",
    "g_test",
    "hellinger",
    "jensenshannon",
    "kl_div",
    "psi",
    "TVD",
    "z",
]


class StrictModel(BaseModel):
    """Base for the threshold classes: unknown keys are rejected, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckThreshold(StrictModel):
    """When one check counts as drifted, and whether it can trigger retraining."""

    threshold: float = Field(
        ge=0, description="Effect size at or above which the check is drifted (unit per check)."
    )
    retrain: bool = Field(
        True, description="A drift in this check recommends retraining; false only warns."
    )
    enabled: bool = True


class EvidentlyConfig(StrictModel):
    """Column drift methods used in the Evidently HTML report.

    The defaults are effect sizes. A method that is a test (such as ks or chisquare) takes a
    p-value as its threshold instead.
    """

    num_method: NumMethod = "wasserstein"
    num_threshold: float = Field(0.1, gt=0)
    cat_method: CatMethod = "psi"
    cat_threshold: float = Field(0.1, gt=0)


class DriftConfig(StrictModel):
    """Every threshold of the drift report and retraining decision."""

    alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="Family-wise significance level, split over the checks with a p-value "
        "(Bonferroni).",
    )
    min_window_interactions: int = Field(
        50, ge=1, description="Fewer interactions in a window give no decision at all."
    )
    min_sample: int = Field(
        30, ge=2, description="Fewer observations on either side skip that one check."
    )
    reference_quantile: float = Field(
        0.75,
        gt=0,
        lt=1,
        description="Default windows: the reference ends at this quantile of date_added.",
    )
    head_share: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Head = most popular reference books making up this share of interactions.",
    )
    max_categories: int = Field(
        20, ge=2, description="Categories beyond the most frequent ones are pooled as 'other'."
    )
    seed: int = Field(0, description="Seed of the random half split of the reference window.")
    checks: dict[CheckName, CheckThreshold]
    evidently: EvidentlyConfig = Field(default_factory=EvidentlyConfig)

    def check(self, name: CheckName) -> CheckThreshold:
        """Return the threshold of `name`; raise `ConfigError` when drift.yaml lacks it."""
        if name not in self.checks:
            raise ConfigError(
                f"checks.{name} is missing from the drift config: add it with a threshold "
                f"(see {DEFAULT_CONFIG_PATH})"
            )
        return self.checks[name]

    @classmethod
    def from_yaml(cls, path: str | Path = DEFAULT_CONFIG_PATH) -> DriftConfig:
        """Load and validate a YAML file; raise `ConfigError` naming each bad key."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"drift config {path} not found: pass --config with a YAML file")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"drift config {path} is not valid YAML: {error}") from None
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigError(f"{path}: {format_validation_error(error)}") from None
