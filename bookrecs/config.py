"""Typed configuration for a training run, saved with every run.

Every config class rejects unknown keys, so a misspelt option fails at load time instead of
being ignored. `TrainConfig.to_yaml` and `TrainConfig.from_yaml` round-trip exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bookrecs.exceptions import ConfigError

DatasetName = Literal["demo", "goodreads", "prepared", "custom"]


class StrictModel(BaseModel):
    """Base for config classes: unknown keys are rejected and instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtocolConfig(StrictModel):
    """Preparation and time-split settings for raw interactions (the competition's protocol)."""

    english_only: bool = Field(True, description="Keep only books whose language_code is English.")
    english_codes: tuple[str, ...] = ("eng", "en-US", "en-GB", "en-CA", "en")
    merge_editions: bool = Field(
        True, description="Merge editions that share a normalised title into one item_id."
    )
    min_user_items: int = Field(3, ge=1, description="Keep users with at least this many books.")
    recent_share: float = Field(
        0.6, gt=0, le=1, description="Share of the most recent interactions that is kept."
    )
    test_quantile: float = Field(
        0.75, gt=0, lt=1, description="Quantile of date_added at which train and test are cut."
    )
    cold_threshold: int = Field(
        1,
        ge=1,
        description="An item is cold when it has fewer than this many train interactions.",
    )
    weight_base: float = 1.0
    weight_rating: float = 0.25
    weight_is_read: float = 0.5


class DemoConfig(StrictModel):
    """Size of the synthetic demo dataset."""

    size: Literal["small", "full"] = "small"
    n_users: int | None = Field(None, ge=10, description="Override the number of users.")
    n_books: int | None = Field(None, ge=10, description="Override the number of books.")


class EvalConfig(StrictModel):
    """Evaluation protocol."""

    k: int = Field(10, ge=1, le=100)
    long_tail_head_share: float = Field(
        0.8, gt=0, lt=1, description="Head = most popular items making up this share of train."
    )
    batch_size: int = Field(4096, ge=1, description="Users scored per batch.")


class PromotionConfig(StrictModel):
    """Rule that picks the serving candidate from the metrics table."""

    metric: str = "ndcg@10"
    cold_metric: str = "cold_ndcg@10"
    cold_floor: float = Field(
        0.01,
        ge=0,
        description="Minimum cold metric a candidate must reach, so a model that never shows"
        " a new book cannot win on its overall metric alone.",
    )


DEFAULT_MODELS = ("random", "popular", "itemknn", "als", "content", "lightfm")


class TrainConfig(StrictModel):
    """Everything that determines a training run."""

    dataset: DatasetName = "demo"
    data_dir: str | None = None
    seed: int = Field(42, ge=0, description="Seed of every random choice.")
    models: tuple[str, ...] = DEFAULT_MODELS
    model_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    evaluation: EvalConfig = Field(default_factory=EvalConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    show_progress: bool = True

    @model_validator(mode="after")
    def _check_data_dir(self) -> TrainConfig:
        if self.dataset != "demo" and not self.data_dir:
            raise ValueError(
                f"dataset={self.dataset!r} needs data_dir: pass --data-dir pointing at its files"
            )
        return self

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Serialise to YAML; write it to `path` when given."""
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> TrainConfig:
        """Load from a YAML file path or a YAML string."""
        is_path = isinstance(source, Path) or "\n" not in source and Path(source).is_file()
        text = Path(source).read_text() if is_path else str(source)
        return cls.from_dict(yaml.safe_load(text) or {})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Validate a plain dict, turning pydantic's errors into one `ConfigError`."""
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a plain dict, to be merged with overrides and validated."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, not {values!r}")
    return values


def format_validation_error(error: ValidationError) -> str:
    """Render pydantic errors as one line per bad field: `field: message (got value)`."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<config>"
        lines.append(f"{field}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
