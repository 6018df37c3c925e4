"""The SkinMap embedding space (paper section 2).

``members/``  one module per encoder: the frozen EfficientNet-Lite0 (ONNX) and MiniLM, and the
              trainable CLIP, SigLIP, DINO, iBOT and MAE Lightning modules.
``images``    robust image decoding (grayscale, RGBA, 16-bit converted; unreadable skipped).
``extract``   batched, cached (content hash + encoder identity), resumable extraction.
``fusion``    PCA-initialised linear projector, contrastive loss and the STRUCTURE regulariser.
``pipeline``  the whole chain for a catalog, and ``embed_paths`` for new images.
``evaluation`` member agreement (k-NN overlap), diagnosis probes, zero-shot accuracy.
"""
