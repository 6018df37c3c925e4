"""Data-quality audit (the critique, methods.md section 10), one module per concept:

``leakage``       lesion leakage across partitions (every counting convention), corrected partitions
                  (a) and (b), cross-dataset reuse by id and by embedding near-identity;
``duplicates``    near-duplicate pairs from a faiss k-NN search (and their acceptance by threshold or
                  ratio test), union-find clusters, label conflicts, the summary counts;
``verification``  :class:`~skinmap.analysis.quality.verification.CopyVerificationConfig`, every knob of
                  the copy verification with its range, and the acceptance rule it sets;
``registration``  verification of candidate pairs by registered, high-passed pixel correlation
                  (searching mirror, crop scale and offset), coarse to fine;
``thumbnails``    the grey-level thumbnails registered, their high-pass and the device pattern;
``matching``      normalised cross-correlation, tile-by-tile agreement, sub-pixel crop refinement;
``evaluation``    precision and recall of duplicate rules against planted copies;
``review``        the human review CSV of candidate pairs and its decisions;
``outliers``      the k-NN off-topic score and its ranking;
``splits``        the cleaning rule and the lesion-grouped, diagnosis-stratified re-split (c);
``resolution``    the 28 px nearest-upsampling pitfall and its classifier probe;
``descriptors``   a mirror- and colour-invariant pixel descriptor (alternative duplicate vectors);
``whitening``     mirror averaging and dataset-fitted PCA whitening of the duplicate descriptors.

Pure functions over arrays and tables: the chapter's figures are :mod:`skinmap.viz.quality`, the
embedding member's vectors of mirrored images :mod:`skinmap.embed.mirrored`, and reading the run
directory :mod:`skinmap.runs`.
"""
