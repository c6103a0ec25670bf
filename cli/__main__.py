"""``python -m cli`` is ``hearth-cli``."""

import sys

from cli import main

sys.exit(main())
