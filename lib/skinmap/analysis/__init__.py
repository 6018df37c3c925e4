"""Analyses over the shared embedding space: pure functions over arrays and tables.

Nothing here reads the run directory (:mod:`skinmap.runs`), draws (:mod:`skinmap.viz`) or embeds
images (:mod:`skinmap.embed`). Knob bundles are frozen configs (:mod:`skinmap.config`).

``knn``                      exact cosine k-NN (faiss)
``resampling``               bootstrap draws and weights, percentile intervals
``novelty``                  yearly novelty against its bootstrap null (eqs. 1-6)
``icd_coverage``             ICD-10 coverage by FST group, orphan codes
``frechet``                  Fréchet distance between Gaussian fits (eqs. 7-8)
``similarity``               dataset similarity from it: bootstrap intervals, uniqueness, clustering
``density``                  GMM log-density and sparse / hypersaturated regions
``topology``                 holes by spectral persistent homology (eqs. 9-18)
``probes``, ``imputation``   linear probes of metadata, their evaluation, and imputation
``retrieval``                case retrieval and its benchmark
``embedding_evaluation``     how good and consistent the members and the fused space are
``quality``                  data-quality audit (leakage, near duplicates, label conflicts, off-topic)
"""
