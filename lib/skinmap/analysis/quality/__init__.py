"""Data-quality audit (the critique, methods.md section 10), one module per concept:

``leakage``      lesion leakage across partitions (every counting convention), corrected partitions
                 (a) and (b), cross-dataset reuse by id and by embedding near-identity;
``duplicates``   near-duplicate pairs from a faiss k-NN search, union-find clusters, label conflicts,
                 evaluation against planted copies, the human review CSV;
``outliers``     the k-NN off-topic score and its ranking;
``splits``       the cleaning rule and the lesion-grouped, diagnosis-stratified re-split (c);
``resolution``   the 28 px nearest-upsampling pitfall and its classifier probe;
``descriptors``  a mirror- and colour-invariant pixel descriptor (alternative duplicate vectors) and the
                 embedding member's vectors of mirrored images;
``registration`` verification of candidate pairs by registered, high-passed pixel correlation
                 (searching mirror, crop scale and offset);
``whitening``    mirror averaging and dataset-fitted PCA whitening of the duplicate descriptors;
``inputs``       reading the embedding, the DermaMNIST tables and the synthetic ground truth;
``figures``      the chapter's Venn-style diagram, pair galleries and side-by-side images.
"""
