"""``python -m bayesdtr``: the command line."""

import sys

from bayesdtr.cli import main

sys.exit(main())
