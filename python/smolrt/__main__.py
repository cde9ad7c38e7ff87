"""`python -m smolrt ...` runs the command line."""

import sys

from smolrt.cli import main

sys.exit(main())
