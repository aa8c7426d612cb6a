"""Recommenders behind one interface (`Recommender`), looked up by name.

Classes are imported lazily so that, for example, serving popular lists never imports LightFM.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from bookrecs.exceptions import ConfigError
from bookrecs.models.base import Recommender

MODEL_PATHS: dict[str, str] = {
    "random": "bookrecs.models.random:RandomRecommender",
    "popular": "bookrecs.models.popular:PopularRecommender",
    "itemknn": "bookrecs.models.itemknn:ItemKNNRecommender",
    "als": "bookrecs.models.als:ALSRecommender",
    "content": "bookrecs.models.content:ContentRecommender",
    "lightfm": "bookrecs.models.lightfm_hybrid:LightFMRecommender",
}


def get_model_class(name: str) -> type[Recommender]:
    """Return the recommender class registered under `name`."""
    if name not in MODEL_PATHS:
        known = ", ".join(sorted(MODEL_PATHS))
        raise ConfigError(f"unknown model {name!r}: choose one of {known}")
    module_name, class_name = MODEL_PATHS[name].split(":")
    return getattr(import_module(module_name), class_name)


def build_model(name: str, seed: int, params: dict[str, Any] | None = None, **options: Any):
    """Create an unfitted model `name` with hyperparameters `params`."""
    return get_model_class(name)(seed=seed, **(params or {}), **options)


__all__ = ["MODEL_PATHS", "Recommender", "build_model", "get_model_class"]
