"""Exceptions raised by the core. Each message names the bad value and the fix."""


class BookRecsError(Exception):
    """Base class of every error the core raises on purpose."""


class DataError(BookRecsError):
    """An input file or table is missing, unreadable or lacks a required column."""


class ConfigError(BookRecsError):
    """A configuration value is invalid."""


class NotFittedError(BookRecsError):
    """A model was used before `fit` or `load`."""


class ModelLoadError(BookRecsError):
    """A saved model is missing, corrupt or of another format version."""
