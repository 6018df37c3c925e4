"""A small, independent test bed for copy detection, rendered like the synthetic atlas."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from skinmap.data.synthetic.render import (
    CLUSTER_SD,
    DIAGNOSIS_CENTRES,
    NEAR_DUPLICATE_TRANSFORMS,
    jpeg_bytes,
    near_duplicate,
    render_lesion,
)

__all__ = ["copy_detection_set"]


def copy_detection_set(
    seed: int = 2026, *, n_sources: int = 40, n_family: int = 12, n_copies: int = 36, size: int = 64
) -> tuple[list[Image.Image], dict[tuple[int, int], str]]:
    """A small, independent test bed for copy detection, rendered like the atlas.

    ``n_sources`` lesions (dermoscopy and clinical, four diagnosis centres, so each has look-alikes),
    a family of ``n_family`` pose-free renders stepping along hue and size (near-identical images that
    are *not* copies, like the planted hole's ring) and ``n_copies`` near-duplicates of the first
    sources, cycling through :data:`NEAR_DUPLICATE_TRANSFORMS`. Every image is JPEG-encoded once
    (quality 92) and decoded, as the atlas stores them. Returns the images and the planted pairs
    ``{(source index, copy index): transform}``.
    """
    if n_copies > n_sources:
        raise ValueError(f"n_copies {n_copies} exceeds n_sources {n_sources}")
    rng = np.random.default_rng(seed)

    def encoded(im: Image.Image) -> Image.Image:
        with Image.open(io.BytesIO(jpeg_bytes(im))) as out:
            return out.convert("RGB")

    diagnoses = list(DIAGNOSIS_CENTRES)[:4]
    images = []
    for k in range(n_sources):
        centre = np.asarray(DIAGNOSIS_CENTRES[diagnoses[k % 4]], float)
        z = centre + rng.normal(0, CLUSTER_SD, len(centre))
        images.append(encoded(render_lesion(z, int(rng.integers(1, 7)), ("dermoscopy", "clinical")[k % 2], rng, size,
                                            age=float(rng.uniform(20, 80)), sex=("male", "female")[k % 2])))
    base = np.asarray(DIAGNOSIS_CENTRES[diagnoses[0]], float)
    for k in range(n_family):
        z = base.copy()
        z[0] += 0.05 * k
        z[1] += 0.03 * k
        images.append(encoded(render_lesion(z, 3, "clinical", rng, size, nuisance=0.0)))
    truth = {}
    for k in range(n_copies):
        transform = NEAR_DUPLICATE_TRANSFORMS[k % len(NEAR_DUPLICATE_TRANSFORMS)]
        truth[(k, len(images))] = transform
        images.append(encoded(near_duplicate(images[k], transform, rng)))
    return images, truth
