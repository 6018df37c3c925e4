"""The SkinMap embedding space (paper section 2).

``members/``  one module per encoder: the frozen EfficientNet-Lite0 (ONNX) and MiniLM, and the
              trainable CLIP, SigLIP, DINO, iBOT and MAE Lightning modules; their shared base,
              the kind registry (``MemberSpec``) and the training loop.
``images``    robust image decoding (grayscale, RGBA, 16-bit converted; unreadable skipped).
``extract``   batched, cached (content hash + encoder identity), resumable extraction.
``fusion``    PCA-initialised linear projector, contrastive loss and the STRUCTURE regulariser.
``pipeline``  the whole chain for a catalog, and ``embed_paths`` for new images.
``training_cache`` trained members and projector keyed by data + config + code.
``mirrored``  the frozen member's vectors of mirrored images (the quality chapter's descriptors).

Besides torch and friends the package imports :mod:`skinmap.io`, :mod:`skinmap.hashing`,
:mod:`skinmap.runs` (the run directory's file names) and array helpers of ``skinmap.analysis``;
never ``skinmap.book``. The evaluation of the spaces is :mod:`skinmap.analysis.embedding_evaluation`.
No module of it is part of an import cycle (``tests/embed/test_imports.py``).
"""
