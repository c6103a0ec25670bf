"""``python -m core`` is ``hearth-cli``."""

import sys

from core.cli import main

sys.exit(main())
