"""Holes in the embedding space by spectral persistent homology (paper section 8, eqs. 9-18).

``graph``        landmarks and the symmetric k-NN graph (eq. 9)
``resistance``   degree-corrected effective resistance, exact dense and spectral (eqs. 10-11)
``persistence``  Ripser H1 diagram, ranking and significance (eqs. 12-13)
``search``       the pipeline and its knobs (:class:`~.search.HoleSearchConfig`), eqs. 9-13
``holes``        representative cycles, geometry, boundary samples, term frequencies (eqs. 14-18)
"""
