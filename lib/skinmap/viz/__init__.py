"""The plotting helpers chapters share. Figures live here, never in ``skinmap.analysis`` (which stays pure).

- ``style``: ``set_style()`` (one look, >= 9 pt text at the book's width, the palette, the audit hook),
  ``legend_outside``, ``save_figure``;
- ``palette``: the colour-blind-safe categorical palette and its rule (colour, then marker/hatch),
  CIEDE2000 and colour-vision-deficiency simulation, ``scatter_by_category``;
- ``audit``: ``audit_figure(fig)`` -> the broken figure rules of a finished figure;
- ``bars``: bars clipped at an axis limit with a marker and the true value, grouped bars;
- ``maps``: UMAP panels by category; ``topology``: the persistence diagram with non-colliding labels;
- ``terms``: ranked term bars with counts; ``gallery`` / ``quality``: thumbnail galleries whose
  captions fit, the leakage diagram; ``hole_explorer``: the interactive hole explorer.
"""
