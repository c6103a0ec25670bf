"""Hearth's Qt desktop app: views and thin adapters over core/ (no logic here)."""
