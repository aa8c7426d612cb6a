"""Entry point of `python -m pilot`."""

import sys

from pilot.cli import main

sys.exit(main())
