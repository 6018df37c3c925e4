"""The few plotting helpers chapters share: one static style, figure export, galleries."""
