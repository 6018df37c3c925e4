"""Held-out check of the copy detector on freshly rendered synthetic lesions (not the demo atlas).

The verification's floor and ratio were chosen on the demo atlas, whose six cropped copies are too
few to trust a recall of 1. :func:`skinmap.data.synthetic.copy_detection_set` renders, with another
seed, 36 cropped, mirrored and colour-jittered copies (12 each) among look-alikes of the same diagnoses and
a family of pose-free near-identical renders. Every pair is a candidate, so each image competes with
all others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinmap.analysis.quality import duplicates, registration, thumbnails
from skinmap.analysis.quality.verification import CopyVerificationConfig
from skinmap.data.synthetic import NEAR_DUPLICATE_TRANSFORMS, copy_detection_set


def test_copies_found_among_lookalikes(tmp_path):
    images, truth = copy_detection_set()
    paths = []
    for k, im in enumerate(images):
        paths.append(tmp_path / f"{k}.png")  # lossless: each image stays JPEG-encoded once, as in the atlas
        im.save(paths[-1])
    fine, ok = thumbnails.luminance_thumbnails(paths, 128)
    assert ok.all()
    i, j = np.triu_indices(len(paths), 1)
    scores = registration.registered_similarity(thumbnails.reduce_thumbnails(fine), i, j,
                                                CopyVerificationConfig(min_crop=0.85, crop_step=0.025),
                                                fine_thumbnails=fine, progress=False)
    pairs = duplicates.rescored_pairs(pd.DataFrame({"i": i, "j": j, "similarity": 1.0}), scores)
    found = duplicates.distinct_pairs(pairs, 0.95, floor=0.65, ratio=0.7)  # the profiles' parameters
    predicted = set(zip(found["i"], found["j"]))
    hits = predicted & set(truth)
    precision = len(hits) / max(1, len(predicted))
    per = {t: sum(v == t for v in truth.values()) for t in NEAR_DUPLICATE_TRANSFORMS}
    recall = {t: sum(truth[p] == t for p in hits) / per[t] for t in NEAR_DUPLICATE_TRANSFORMS}
    missed = {p: float(pairs.set_index(["i", "j"])["similarity"].get(p, np.nan)) for p in set(truth) - hits}
    assert precision >= 0.95, (precision, sorted(predicted - set(truth)))
    assert len(hits) / len(truth) >= 0.95, (recall, missed)
    # Measured: 35 of 36, crops and flips 12/12, jitter 11/12. The missed copy's source has a periodic
    # (checkerboard) texture, and crops of two look-alike sources with the same texture register with it
    # at 0.83-0.89, above the copy's tile-by-tile 0.79; the whole-frame score would find it (0.94) but
    # also accepts rulers and side bars shared by different real photographs (see the chapter).
    assert min(recall.values()) >= 0.9, (recall, missed)
    # the threshold alone misses some: the ratio test is what recovers them
    plain = set(zip(*duplicates.thresholded(pairs, 0.95)[["i", "j"]].values.T)) & set(truth)
    assert len(plain) < len(hits)
