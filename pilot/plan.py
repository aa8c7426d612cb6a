"""The pilot plan: a YAML file validated with pydantic before any number is computed.

Every model rejects unknown keys, so a misspelt field fails at load time with the field's
path, the bad value and the fix, instead of being silently ignored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bookrecs.assignment import variant_boundaries
from bookrecs.exceptions import ConfigError
from pilot.metrics import METRICS

DEFAULT_PLAN = Path(__file__).resolve().parent / "plan.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Design(_Strict):
    """Fixed-horizon design: give either the MDE or the duration, and the other is derived."""

    mde_relative: float | None = Field(
        None, gt=0, lt=1, description="Minimum detectable relative lift of the primary metric."
    )
    duration_weeks: int | None = Field(None, ge=1, le=52, description="Planned whole weeks.")
    mde_table: tuple[float, ...] = Field(
        (0.01, 0.02, 0.05), description="Relative lifts tabulated by `pilot plan`."
    )

    @model_validator(mode="after")
    def _check_one_target(self) -> Design:
        if (self.mde_relative is None) == (self.duration_weeks is None):
            raise ValueError(
                "set exactly one of design.mde_relative (e.g. 0.02) or design.duration_weeks "
                f"(e.g. 2), got mde_relative={self.mde_relative!r}, "
                f"duration_weeks={self.duration_weeks!r}"
            )
        if any(not 0 < lift < 1 for lift in self.mde_table):
            raise ValueError(f"design.mde_table values must be in (0, 1), got {self.mde_table!r}")
        return self


class Traffic(_Strict):
    """Eligible traffic per day; give daily_users, or daily_sessions with sessions_per_user."""

    daily_users: float | None = Field(
        None, gt=0, description="New eligible users entering the pilot per day, all variants."
    )
    daily_sessions: float | None = Field(
        None, gt=0, description="Eligible sessions per day; converted with sessions_per_user."
    )
    share: float = Field(1.0, gt=0, le=1, description="Share of eligible traffic in the pilot.")

    @model_validator(mode="after")
    def _check_one_volume(self) -> Traffic:
        if (self.daily_users is None) == (self.daily_sessions is None):
            raise ValueError(
                "set exactly one of traffic.daily_users or traffic.daily_sessions, "
                f"got daily_users={self.daily_users!r}, daily_sessions={self.daily_sessions!r}"
            )
        return self


class Guardrail(_Strict):
    """A metric the treatment must not make worse by more than `margin`."""

    metric: str
    margin: float = Field(gt=0, description="Non-inferiority margin, in the margin_type scale.")
    margin_type: Literal["relative", "absolute"] = "relative"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        return _check_metric(name)


class RollbackCriterion(_Strict):
    """Roll back when the metric is worse than `threshold` with one-sided confidence."""

    metric: str
    threshold: float = Field(gt=0, description="Degradation that triggers a rollback.")
    threshold_type: Literal["relative", "absolute"] = "relative"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        return _check_metric(name)


class Rollback(_Strict):
    """Daily safety check, run on cumulative data from the first pilot day."""

    alpha: float = Field(
        0.01, gt=0, lt=0.5, description="One-sided level; stricter than alpha for daily looks."
    )
    min_users_per_arm: int = Field(500, ge=1, description="Check only with this many users.")
    criteria: tuple[RollbackCriterion, ...] = ()


class Attribution(_Strict):
    """When a purchase counts for the recommendation block."""

    window: Literal["session", "hours"] = "session"
    hours: float = Field(24.0, gt=0, description="Window after the click, when window='hours'.")
    same_item: bool = Field(True, description="The purchased item must be the clicked item.")


class Cuped(_Strict):
    """CUPED variance reduction with a pre-period covariate."""

    enabled: bool = False
    correlation: float = Field(
        0.0, ge=0, lt=1, description="Correlation between the metric and its pre-period value."
    )


class Srm(_Strict):
    """Sample ratio mismatch check."""

    alpha: float = Field(0.001, gt=0, lt=0.5, description="Level of the chi-square SRM test.")
    dimensions: tuple[Literal["placement", "platform", "first_day"], ...] = (
        "placement",
        "platform",
    )


class DataChecks(_Strict):
    """Thresholds of the data checks that run before any number."""

    max_events_per_minute: int = Field(
        30, ge=1, description="A user with more events in one minute is treated as automated."
    )
    max_sessions_per_day: int = Field(
        50, ge=1, description="A user with more sessions in one day is treated as automated."
    )
    min_day_share: float = Field(
        0.5, gt=0, lt=1, description="A day below this share of the median day is incomplete."
    )
    session_timeout_minutes: float = Field(
        30, gt=0, description="Impressions map to the user's latest session within this time."
    )


class RatioBaseline(_Strict):
    """Per-user moments of a ratio metric: numerator X and denominator Y summed per user."""

    numerator_mean: float
    numerator_var: float = Field(ge=0)
    denominator_mean: float = Field(gt=0)
    denominator_var: float = Field(ge=0)
    covariance: float

    @property
    def ratio(self) -> float:
        """Ratio of means, the metric's value."""
        return self.numerator_mean / self.denominator_mean


class ProportionBaseline(_Strict):
    """Share of users with the event."""

    rate: float = Field(gt=0, lt=1)


class Baselines(_Strict):
    """Historical values of the metrics, used for sample sizes."""

    sessions_per_user: float = Field(gt=0, description="Mean sessions per user in the pilot.")
    metrics: dict[str, RatioBaseline | ProportionBaseline]
    source: str = "plan file"

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, metrics: dict) -> dict:
        for name in metrics:
            _check_metric(name)
        return metrics


class PilotPlan(_Strict):
    """A complete fixed-horizon A/B pilot plan."""

    name: str = Field(min_length=1)
    salt: str = Field(min_length=1, description="Assignment salt, unique per experiment.")
    start_date: dt.date
    end_date: dt.date | None = Field(None, description="Last pilot day; default from the design.")
    variants: dict[str, float] = Field(description="Variant name to share of pilot users.")
    control: str = "control"
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, gt=0.5, lt=1)
    design: Design
    traffic: Traffic
    primary: str = "revenue_per_session"
    secondary: tuple[str, ...] = ("purchase_session_share", "block_ctr")
    guardrails: tuple[Guardrail, ...] = ()
    rollback: Rollback = Field(default_factory=Rollback)
    attribution: Attribution = Field(default_factory=Attribution)
    cuped: Cuped = Field(default_factory=Cuped)
    srm: Srm = Field(default_factory=Srm)
    data_checks: DataChecks = Field(default_factory=DataChecks)
    baselines: Baselines | None = None

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, variants: dict[str, float]) -> dict[str, float]:
        if len(variants) != 2:
            raise ValueError(
                f"variants must name exactly two arms (control and one treatment), "
                f"got {list(variants)!r}"
            )
        try:
            variant_boundaries(list(variants), list(variants.values()))
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return variants

    @field_validator("primary")
    @classmethod
    def _check_primary(cls, name: str) -> str:
        return _check_not_quantile(name)

    @field_validator("secondary")
    @classmethod
    def _check_secondary(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            _check_not_quantile(name)
        return names

    @model_validator(mode="after")
    def _check_consistency(self) -> PilotPlan:
        if self.control not in self.variants:
            raise ValueError(
                f"control {self.control!r} is not among variants {list(self.variants)!r}; "
                "set control to the name of the current experience"
            )
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(
                f"end_date {self.end_date} is before start_date {self.start_date}; "
                "swap them or remove end_date"
            )
        return self

    @property
    def treatment(self) -> str:
        """Name of the treatment variant."""
        return next(name for name in self.variants if name != self.control)

    def with_baselines(self, baselines: Baselines) -> PilotPlan:
        """Return a copy whose baselines are replaced, for example by history estimates."""
        return self.model_copy(update={"baselines": baselines})


def _check_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; use one of: {', '.join(sorted(METRICS))}")
    return name


def _check_not_quantile(name: str) -> str:
    _check_metric(name)
    if METRICS[name].kind == "quantile":
        raise ValueError(f"{name!r} is a quantile metric; use it only as a guardrail")
    return name


MAX_INPUT_CHARS = 200


def format_plan_error(error: ValidationError) -> str:
    """Render pydantic errors as one line per bad field: `field: message (got value)`.

    Messages of the plan's own checks already name the bad values, so they get no `(got ...)`.
    Other values are shortened to `MAX_INPUT_CHARS` characters, because the value of a check
    across fields is the whole plan.
    """
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "plan"
        if item["type"] == "value_error":
            lines.append(f"{field}: {item['msg'].removeprefix('Value error, ')}")
            continue
        value = repr(item.get("input"))
        if len(value) > MAX_INPUT_CHARS:
            value = value[:MAX_INPUT_CHARS] + "..."
        lines.append(f"{field}: {item['msg']} (got {value})")
    return "invalid plan:\n  " + "\n  ".join(lines)


def load_plan(path: str | Path = DEFAULT_PLAN) -> PilotPlan:
    """Load and validate a plan file.

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, or a field is invalid. The message lists each
        bad field with its value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"plan file {path} not found; pass --plan pointing at a plan YAML file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"plan file {path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"plan file {path} must contain a mapping, got {type(values).__name__}")
    try:
        return PilotPlan.model_validate(values)
    except ValidationError as error:
        raise ConfigError(f"{path}: {format_plan_error(error)}") from None
