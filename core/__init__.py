"""Hearth's headless core: models, engine, planner, hub. Never imports Qt (see pyproject's
import-linter contract), so it runs the same under the GUI, the CLI, tests and benchmarks."""

__version__ = "0.1.0"
