"""Paths shared by test modules and fixtures."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Large generated files (assembled and quantized models) survive across runs here.
MODEL_CACHE = REPO_ROOT / ".cache" / "test-models"
# Screenshots and other things a person should look at; git-ignored.
ARTIFACTS = REPO_ROOT / "test-artifacts"
