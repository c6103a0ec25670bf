"""Hearth's headless core: models, engine, planner, hub. Never imports Qt (see pyproject's
import-linter contract), so it runs the same under the GUI, the CLI, tests and benchmarks."""

__version__ = "0.1.0"

import logging as _logging

# Until a front end configures the log (core.log.configure), records go nowhere rather than
# to Python's last-resort stderr handler: llama.cpp's warnings must never reach the console.
_logging.getLogger("hearth").addHandler(_logging.NullHandler())
