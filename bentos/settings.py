"""Service settings, read from BOOKRECS_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bookrecs.config import format_validation_error
from bookrecs.exceptions import ConfigError

ENV_PREFIX = "BOOKRECS_"


class ServiceSettings(BaseModel):
    """Settings of the recommendation service.

    Each field is read from the environment variable BOOKRECS_<FIELD NAME IN CAPITALS>;
    tuples are comma-separated (e.g. BOOKRECS_VARIANTS=control,treatment).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    serving_pointer: Path | None = Field(
        None, description="Serving pointer file; default: <BENTOML_HOME>/bookrecs-serving.json."
    )
    bundle: Path | None = Field(
        None, description="Serve this bundle folder directly instead of the pointer's version."
    )
    previous_bundle: Path | None = Field(
        None, description="Previous-model fallback when `bundle` is set."
    )
    impressions: Path = Field(Path("data/impressions.sqlite"), description="Impression log.")
    log_impressions: bool = True
    user_salt: str = Field("bookrecs", description="Salt of the user hash in the log.")
    experiment_salt: str = Field("bookrecs-pilot", description="Salt of variant assignment.")
    variants: tuple[str, ...] = ("control", "treatment")
    variant_weights: tuple[float, ...] | None = None
    popular_variants: tuple[str, ...] = Field(
        (), description="Variants served the popular list instead of the model (a baseline arm)."
    )
    availability: Path | None = Field(None, description="CSV/Parquet: item_id, available.")
    score_timeout_ms: float = Field(
        250.0, gt=0, description="Model calls slower than this fall back (milliseconds)."
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="How often the pointer, bundles and availability are checked."
    )
    rate_limit: float = Field(
        50.0, ge=0, description="Requests per second per client; 0 turns rate limiting off."
    )
    rate_burst: int = Field(100, ge=1, description="Requests a client may send at once.")
    rate_key_header: str | None = Field(
        None,
        description="Header naming the client (e.g. an API key set by a gateway); "
        "default: the client address.",
    )
    max_body_bytes: int = Field(
        65_536,
        ge=1024,
        description="Largest request body accepted by /recommend and /similar (bytes); "
        "larger bodies get 413.",
    )
    workers: int = Field(1, ge=1, description="Service worker processes.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of the bookrecs loggers under `bentoml serve`."
    )
    detailed_reasons: bool = Field(
        True,
        description="Reasons of model items from bookrecs.explain ('same series: <name>'); "
        "false gives the bare kind ('same series') and saves about a millisecond per request.",
    )
    access_log: bool = Field(
        False,
        description="Log one line per HTTP request (BentoML access log); the impression log "
        "already records every served list.",
    )

    @model_validator(mode="after")
    def _check_variants(self) -> ServiceSettings:
        if not self.variants:
            raise ValueError("variants is empty: name at least one variant")
        unknown = set(self.popular_variants) - set(self.variants)
        if unknown:
            raise ValueError(f"popular_variants {sorted(unknown)} are not in variants")
        if self.variant_weights is not None and len(self.variant_weights) != len(self.variants):
            raise ValueError(
                f"variant_weights has {len(self.variant_weights)} values for "
                f"{len(self.variants)} variants: give one weight per variant"
            )
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceSettings:
        """Build settings from BOOKRECS_* variables of `environ` (default: os.environ)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "":
                continue
            if "tuple" in str(field.annotation):
                values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[name] = raw
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            message = format_validation_error(error).replace(
                "invalid configuration", "invalid BOOKRECS_* environment variables"
            )
            raise ConfigError(message) from None
