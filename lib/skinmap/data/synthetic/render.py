"""The synthetic atlas's latent space and how one point of it becomes a picture.

Every lesion image is rendered from an 8-d latent vector ``z`` (:data:`LATENT_AXES`), so nearby
latents give visually similar pictures; diagnoses are Gaussian clusters around
:data:`DIAGNOSIS_CENTRES`. Off-topic pictures (:func:`render_off_topic`) are not drawn from the
latent at all, and :func:`near_duplicate` makes the planted copies. Every random choice comes from
the ``rng`` passed in, in a fixed order, so the same seed gives the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

__all__ = [
    "LATENT_AXES",
    "LATENT_DIM",
    "DIAGNOSIS_CENTRES",
    "CLUSTER_SD",
    "SKIN_RGB",
    "render_lesion",
    "OFF_TOPIC_KINDS",
    "render_off_topic",
    "NEAR_DUPLICATE_TRANSFORMS",
    "near_duplicate",
    "jpeg_bytes",
]

LATENT_AXES = ("hue", "size", "darkness", "irregularity", "elongation", "texture_freq", "texture_contrast",
               "variegation")
LATENT_DIM = len(LATENT_AXES)

# Diagnosis -> latent cluster centre (hand-placed so clusters are distinct).
DIAGNOSIS_CENTRES: dict[str, tuple[float, ...]] = {
    "nevus": (0.0, 0.0, 0.3, -1.0, -0.3, -0.5, -0.8, -0.8),
    "melanoma": (0.4, 0.8, 1.2, 1.2, 0.4, 0.5, 0.8, 1.2),
    "basal cell carcinoma": (1.2, -0.3, -0.5, 0.3, 0.2, 1.2, 0.4, -0.5),
    "seborrheic keratosis": (-0.6, 0.4, 0.8, 0.2, 0.8, 1.6, 1.3, -0.2),
    "actinic keratosis": (1.5, -0.6, -1.0, 0.0, -0.2, 1.8, 0.9, -1.0),
    "dermatofibroma": (0.8, -1.0, 0.0, -0.8, -1.0, -1.0, -0.3, 0.8),
    "vascular lesion": (2.2, -0.5, 0.2, -0.6, 0.0, -1.2, -1.0, -0.5),
    "squamous cell carcinoma": (1.6, 0.4, -0.2, 1.0, 0.6, 1.0, 1.2, 0.3),
    "psoriasis": (1.8, 1.6, -0.8, 0.8, 1.2, 0.6, 1.6, -1.2),
    "eczema": (1.4, 1.4, -1.4, 1.5, 0.8, -0.2, 0.6, -1.4),
    "acne": (1.9, -1.4, -0.6, -0.5, -0.8, 0.2, -0.2, -1.5),
    "tinea": (1.0, 1.5, -1.2, -0.2, 1.6, -0.6, 0.4, 1.6),
    "vitiligo": (-2.0, 1.2, -2.0, 0.6, 0.4, -1.4, -1.2, -1.6),
    # the novel region (only in the novel year): far from every centre above
    "scabies": (-1.8, 2.2, 2.0, -2.0, 1.8, 2.6, 2.4, 2.4),
    "impetigo": (-2.4, 2.6, 1.6, -2.4, -1.8, 2.6, 2.2, 2.6),
    "atopic dermatitis": (-1.4, 1.8, 2.4, -2.4, 0.0, 2.8, 2.6, 1.8),
}
CLUSTER_SD = 0.35

SKIN_RGB = {
    1: (0.96, 0.83, 0.75), 2: (0.90, 0.72, 0.60), 3: (0.80, 0.60, 0.46),
    4: (0.66, 0.46, 0.32), 5: (0.48, 0.32, 0.22), 6: (0.30, 0.20, 0.14),
}
_BASE = np.array([0.42, 0.26, 0.17])
_U = np.array([0.55, -0.30, -0.15])  # towards red
_V = np.array([-0.25, 0.05, 0.35])  # towards blue-grey


def _sig(x: float, s: float = 1.0) -> float:
    return float(1.0 / (1.0 + np.exp(-s * x)))


def render_lesion(
    z: np.ndarray,
    fst: int,
    modality: str,
    rng: np.random.Generator,
    size: int = 64,
    *,
    age: float | None = None,
    sex: str | None = None,
    nuisance: float = 1.0,
) -> Image.Image:
    """Render one lesion picture from latent ``z`` (``LATENT_AXES``) on skin of type ``fst``.

    Nuisance (skin tint, border phases, position, rotation, lighting, hairs) comes from ``rng``
    scaled by ``nuisance`` (0 = a canonical pose, used for the planted hole so that only the
    latent varies along the ring). TBP tiles are rendered at half ``size``.
    """
    z = np.asarray(z, dtype=float)
    n = size // 2 if modality == "TBP" else size
    yy, xx = np.mgrid[-1:1:complex(0, n), -1:1:complex(0, n)]
    skin = np.array(SKIN_RGB[int(fst) if fst else 3]) * (1 + nuisance * rng.uniform(-0.06, 0.06, 3))
    # skin: low-frequency mottling
    mott = sum(rng.uniform(0.01, 0.03) * np.sin(f * (xx * np.cos(a) + yy * np.sin(a)) + p)
               for f, a, p in zip(rng.uniform(2, 6, 3), rng.uniform(0, np.pi, 3), rng.uniform(0, 6.3, 3)))
    img = np.clip(skin[None, None, :] * (1 + nuisance * mott[..., None]), 0, 1)
    if age is not None and np.isfinite(age) and nuisance > 0:  # wrinkles: fine oblique lines, stronger with age
        ang = rng.uniform(-0.3, 0.3)
        lines = np.sin(40 * (yy * np.cos(ang) + xx * np.sin(ang)) + rng.uniform(0, 6.3))
        img = img * (1 - 0.05 * float(np.clip(age, 0, 95)) / 95 * (lines > 0.85)[..., None])
    # lesion geometry
    scale = {"dermoscopy": 1.0, "clinical": 0.7, "TBP": 0.55}[modality]
    radius = scale * 0.32 * np.exp(0.25 * z[1])
    aspect = np.exp(0.22 * z[4])
    rot = nuisance * rng.uniform(0, np.pi)
    cx, cy = nuisance * rng.uniform(-0.08, 0.08, 2)
    xr = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
    yr = -(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)
    theta = np.arctan2(yr, xr)
    rho = np.sqrt((xr / aspect) ** 2 + (yr * aspect) ** 2)
    amp = 0.22 * _sig(z[3], 1.5)
    border = 1 + amp * sum(rng.uniform(0.4, 1.0) * np.cos(k * theta + nuisance * rng.uniform(0, 6.3)) / k ** 0.5
                           for k in range(2, 6))
    edge = 0.05 + 0.04 * _sig(-z[3])
    mask = np.clip((radius * border - rho) / (edge * radius * 2) + 0.5, 0, 1)
    # lesion colour: hue angle on a colour circle, darkness blends from pale skin to dark pigment
    ang = 0.9 * z[0]
    pigment = np.clip(_BASE + 0.3 * (np.cos(ang) * _U + np.sin(ang) * _V), 0.02, 1)
    dark = _sig(z[2], 1.5)
    colour = (1 - dark) * np.clip(skin * 1.25, 0, 1) + dark * pigment * 0.8
    freq = 5 + 9 * _sig(z[5])
    tex = 0.5 + 0.5 * np.sin(freq * np.pi * xr + rng.uniform(0, 6.3)) * np.sin(freq * np.pi * yr + rng.uniform(0, 6.3))
    contrast = 0.45 * _sig(z[6], 1.5)
    lesion = colour[None, None, :] * (1 - contrast * tex[..., None])
    # variegation: an off-centre darker blue-grey core
    core_r = 0.45 * radius
    ox, oy = rng.uniform(-0.3, 0.3, 2) * radius
    core = np.clip((core_r - np.sqrt((xr - ox) ** 2 + (yr - oy) ** 2)) / (0.3 * core_r), 0, 1) * _sig(z[7], 1.5)
    lesion = lesion * (1 - 0.6 * core[..., None]) + 0.6 * core[..., None] * np.array([0.25, 0.25, 0.38])
    img = img * (1 - mask[..., None]) + lesion * mask[..., None]
    # a few short dark hairs, more often for male patients (a weak, imputable signal)
    if sex is not None and rng.random() < nuisance * (0.7 if sex == "male" else 0.2):
        for _ in range(int(rng.integers(1, 4))):
            a, off = rng.uniform(0, np.pi), rng.uniform(-0.8, 0.8)
            along = xx * np.cos(a) + yy * np.sin(a) - rng.uniform(-0.5, 0.5)
            dist = np.abs(xx * np.sin(a) - yy * np.cos(a) - off)
            hair = (dist < 1.0 / n) & (np.abs(along) < rng.uniform(0.3, 0.6))
            img = img * (1 - 0.4 * hair[..., None])
    # modality look
    if modality == "dermoscopy":
        r = np.sqrt(xx ** 2 + yy ** 2)
        vignette = np.clip((0.97 - r) / 0.06, 0, 1) * (1.08 - 0.15 * r ** 2)
        img = img * vignette[..., None]
    elif modality == "clinical":
        beta = nuisance * rng.uniform(0, 2 * np.pi)
        light = 0.78 + 0.22 * nuisance * (xx * np.cos(beta) + yy * np.sin(beta)) + 0.1 * (1 - nuisance)
        img = img * light[..., None]
    else:  # TBP: flatter, slightly desaturated and grey-shifted, noisier
        grey = img.mean(axis=2, keepdims=True)
        img = 0.75 * img + 0.25 * grey * np.array([0.95, 1.0, 1.08])
    img = img + rng.normal(0, 0.015 if modality != "TBP" else 0.03, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


OFF_TOPIC_KINDS = ("text", "histology", "plant", "radiology", "animal", "chart")


def render_off_topic(kind: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A clearly non-dermatological picture (``OFF_TOPIC_KINDS``): a text page, a histology slide,
    a plant, a radiograph, animal fur or a bar chart, each strongly randomised so that off-topic
    images do not form a tight cluster of their own."""
    yy, xx = np.mgrid[-1:1:complex(0, size), -1:1:complex(0, size)]
    if kind == "text":
        paper = rng.uniform(0.85, 1.0, 3)
        ink = rng.uniform(0.0, 0.35, 3)
        img = np.ones((size, size, 3)) * paper
        step = int(rng.integers(5, 10))
        for row in range(3, size - 3, step):
            x = int(rng.integers(2, 8))
            while x < size - 5:
                w = int(rng.integers(2, 12))
                img[row:row + max(1, step // 3), x:min(x + w, size - 3)] = ink
                x += w + int(rng.integers(2, 5))
    elif kind == "histology":
        base = np.array([0.93, 0.72, 0.84]) * rng.uniform(0.85, 1.05, 3)
        img = np.ones((size, size, 3)) * base
        stripes = 0.5 + 0.5 * np.sin(rng.uniform(4, 16) * (xx * np.cos(rng.uniform(0, 3)) + yy) + rng.uniform(0, 6.3))
        img = img * (1 - rng.uniform(0.05, 0.3) * stripes[..., None])
        nucleus_colour = np.array([0.35, 0.15, 0.50]) * rng.uniform(0.7, 1.3, 3)
        for _ in range(int(rng.integers(10, 60))):
            cx, cy, r = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.02, 0.09)
            img[((xx - cx) ** 2 + (yy - cy) ** 2) < r ** 2] = nucleus_colour
    elif kind == "plant":
        img = np.ones((size, size, 3)) * rng.uniform([0.3, 0.25, 0.1], [0.8, 0.7, 0.5])
        leaf_colour = np.array([0.18, 0.55, 0.15]) * rng.uniform(0.6, 1.4, 3)
        for _ in range(int(rng.integers(1, 5))):
            a = rng.uniform(0, np.pi)
            cx, cy = rng.uniform(-0.5, 0.5, 2)
            xr = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
            yr = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
            length, width = rng.uniform(0.4, 0.9), rng.uniform(0.15, 0.4)
            leaf = (xr / length) ** 2 + (yr / width) ** 2 < 1
            vein = leaf & ((np.abs(yr) < 0.025) | (np.abs(np.sin(rng.uniform(8, 20) * xr) * 0.2 - yr) < 0.015))
            img[leaf] = np.clip(leaf_colour, 0, 1)
            img[vein] = np.array([0.55, 0.80, 0.40])
    elif kind == "radiology":
        grey = 0.1 + 0.1 * rng.random()
        img = np.ones((size, size)) * grey
        for sign in (-1, 1):  # two lung fields and ribs
            lung = ((xx - sign * rng.uniform(0.3, 0.45)) / rng.uniform(0.25, 0.35)) ** 2 + (yy / rng.uniform(0.6, 0.8)) ** 2 < 1
            img[lung] = 0.05
        ribs = (np.abs(np.sin(rng.uniform(8, 14) * yy + 2 * xx ** 2)) > 0.9) & (np.abs(xx) < 0.85)
        img[ribs] = rng.uniform(0.6, 0.9)
        img[np.abs(xx) < rng.uniform(0.06, 0.12)] = rng.uniform(0.7, 0.95)  # spine
        img = np.repeat(img[..., None], 3, axis=2)
    elif kind == "animal":
        base, dark = rng.uniform([0.6, 0.3, 0.0], [1.0, 0.6, 0.2]), rng.uniform(0.0, 0.15, 3)
        a, f = rng.uniform(0, np.pi), rng.uniform(5, 15)
        warp = np.sin(f * (xx * np.cos(a) + yy * np.sin(a)) + 2 * np.sin(3 * yy + rng.uniform(0, 6)))
        img = np.where((warp > rng.uniform(0.2, 0.6))[..., None], dark, base)
        img = img * (1 + 0.15 * np.sin(60 * (xx * np.sin(a) - yy * np.cos(a))))[..., None]  # fur grain
    elif kind == "chart":
        img = np.ones((size, size, 3))
        n_bars = int(rng.integers(3, 9))
        width = size // (n_bars + 1)
        for b in range(n_bars):
            h = int(rng.integers(size // 6, size - 6))
            img[size - 3 - h:size - 3, 3 + b * width:3 + b * width + max(2, width - 2)] = rng.uniform(0, 1, 3)
        img[size - 3:size - 2, 2:] = 0.0
        img[:, 2:3] = 0.0
    else:
        raise ValueError(f"unknown off-topic kind {kind!r}; known: {OFF_TOPIC_KINDS}")
    img = img + rng.normal(0, 0.01, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


def jpeg_bytes(img: Image.Image) -> bytes:
    """``img`` encoded as the atlas stores every image (JPEG, quality 92)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, optimize=False)
    return buf.getvalue()


NEAR_DUPLICATE_TRANSFORMS = ("crop", "flip", "jitter")


def near_duplicate(im: Image.Image, transform: str, rng: np.random.Generator) -> Image.Image:
    """A planted near-duplicate of ``im``: ``"crop"`` keeps a random 90-95 % window and enlarges it
    back to the original size (bicubic), ``"flip"`` mirrors it left-right, ``"jitter"`` changes
    brightness, saturation and contrast by up to 15-20 %. The atlas JPEG-encodes the result."""
    w, h = im.size
    if transform == "crop":
        f = rng.uniform(0.90, 0.95)
        cw, ch = int(w * f), int(h * f)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return im.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BICUBIC)
    if transform == "flip":
        return im.transpose(Image.FLIP_LEFT_RIGHT)
    if transform != "jitter":
        raise ValueError(f"unknown transform {transform!r}; expected one of {NEAR_DUPLICATE_TRANSFORMS}")
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.85, 1.15))
    im = ImageEnhance.Color(im).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Contrast(im).enhance(rng.uniform(0.85, 1.15))
