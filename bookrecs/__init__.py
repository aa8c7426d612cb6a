"""BookRecs: a framework-free core for book recommendations (data, split, models, metrics)."""

__version__ = "0.1.0"
