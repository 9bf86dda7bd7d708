"""`python -m migrator` runs the CLI."""

import sys

from migrator.cli import main

sys.exit(main())
