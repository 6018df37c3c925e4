"""The few plotting helpers chapters share: one static style, figure export, galleries, word clouds,
the interactive hole explorer. Figures live here, never in ``skinmap.analysis`` (which stays pure)."""
