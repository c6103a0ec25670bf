"""The bundles' entry script: the same ``main`` as the ``hearth`` entry point.

``app.main.main`` calls ``multiprocessing.freeze_support()`` first, so when the frozen
executable is re-launched as the engine's worker process it becomes that worker.
"""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
