"""Holes in the embedding space by spectral persistent homology (paper section 8, eqs. 9-18).

``graph``        landmarks and the symmetric k-NN graph (eq. 9)
``resistance``   degree-corrected effective resistance, exact dense and spectral (eqs. 10-11)
``persistence``  Ripser H1 diagram, ranking and significance (eqs. 12-13)
``holes``        the pipeline, representative cycles, geometry, boundary samples (eqs. 14-18)
"""
