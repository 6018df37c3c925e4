"""Analyses over the shared embedding space (pure functions over arrays)."""
