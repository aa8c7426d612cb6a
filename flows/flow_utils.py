"""Small helpers shared by the Metaflow flows (kept out of the framework-free core)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bookrecs.exceptions import BookRecsError

# Metaflow rejects the user root, and implicit is slower with more than one BLAS thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def setup_logging() -> None:
    """Send the core's log lines to stderr, where Metaflow captures them per task."""
    logging.basicConfig(
        level=os.environ.get("BOOKRECS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


@contextmanager
def user_errors(step: str) -> Iterator[None]:
    """Turn a `BookRecsError` into one plain message and exit status 1 instead of a traceback."""
    try:
        yield
    except BookRecsError as error:
        print(f"\nerror in step {step}: {error}\n", file=sys.stderr, flush=True)
        sys.exit(1)
