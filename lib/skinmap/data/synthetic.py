"""A seeded synthetic atlas with planted structure: the book's embedded default data.

:func:`generate_synthetic_atlas` writes a dataset root in the "skinmap generic" layout (see
:mod:`skinmap.data.loaders.generic`), so the catalog builder reads it through the same loader as a
user's own data: ``<root>/<Dataset>/{dataset.yml, metadata.csv, images/}``. The ground truth lives
next to it in ``<root>/_synthetic/`` (``ground_truth.json``, ``latent.parquet``).

How images are made. Every lesion image is rendered from an 8-d latent vector ``z``
(``LATENT_AXES``: hue, size, darkness, border irregularity, elongation, texture frequency,
texture contrast, variegation), so nearby latents give visually similar pictures that an
ImageNet CNN places nearby too. Diagnoses are Gaussian clusters in latent space; skin tone
follows the Fitzpatrick type; age adds fine wrinkle lines and sex a few hairs (weak signals an
imputation probe can pick up). Modalities look different: dermoscopy = round lesion in a dark
circular vignette, clinical = smaller lesion on a skin patch under directional light, TBP = a
small low-resolution tile (half the size) on flat light. Off-topic images (text pages, histology,
plants) are not drawn from the latent at all.

Planted structure (ground truth, CONVENTIONS "data/ground_truth.json"):

- exact duplicates: byte-identical copies under new ids, within and across datasets, plus the
  whole re-release subset dataset (``SynClinic-Atlas-Lite`` copies part of ``SynClinic-Atlas``);
- near duplicates: a copy cropped, flipped or colour-jittered;
- label conflicts: a few duplicate pairs whose copy carries another diagnosis;
- off-topic images inside two web-like datasets;
- a *resample year* whose images are jittered copies of earlier latents (saturation);
- a *novel year* adding diagnoses from a latent region no earlier year covers;
- a *planted hole*: a ring of images in latent axes (hue, size) around an empty centre;
- identifier re-releases (same image id in ``SynDerm-Queensland`` and ``SynArchive-2021``) that
  identifier de-duplication must merge, and a few bad inputs (truncated/missing images, odd ages,
  unknown body sites, an unknown label) that the bad-input report must count.

Besides the CONVENTIONS keys, ``ground_truth.json`` holds ``identifier_duplicates`` (pairs merged
by identifier de-duplication: canonical uid, removed uid), ``bad_inputs`` (kind -> uids),
``fst_true`` (uid -> the Fitzpatrick type each image was rendered with, also where the metadata
hides it: the imputation chapter's answer key) and ``latent_axes``. ``latent.parquet`` has one row
per image file (uid + one column per latent axis); off-topic images carry a placeholder far from
every lesion (``OFF_TOPIC_LATENT``).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageEnhance

__all__ = [
    "LATENT_AXES",
    "DIAGNOSIS_CENTRES",
    "SyntheticAtlas",
    "generate_synthetic_atlas",
    "latent_for_catalog",
    "render_lesion",
    "near_duplicate",
    "NEAR_DUPLICATE_TRANSFORMS",
    "copy_detection_set",
    "render_off_topic",
    "OFF_TOPIC_KINDS",
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
# The planted hole: a circle in axes (hue, size) with the other axes fixed at an unused corner.
HOLE_CENTRE = (-1.0, 1.0)  # mid-to-large lesions: small ones all look alike to a CNN
HOLE_RADIUS = 1.4
HOLE_OTHER_AXES = (1.6, -2.6, 2.0, -2.6, -1.5, -2.2)  # dark, smooth, elongated, plain
HOLE_DIAGNOSIS = "lichen planus"
OFF_TOPIC_LATENT = 6.0  # off-topic images are not drawn from the latent; they sit far from everything

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


# ---------------------------------------------------------------- dataset specifications
@dataclass(frozen=True)
class _Spec:
    name: str
    year: int
    modality: str
    frac: float
    diagnoses: dict[str, float]
    country: str | None
    continent: str | None
    fst_probs: tuple[float, ...]
    fst_missing: float
    age: tuple[float, float]  # mean, sd (years)
    age_missing: float
    age_format: str  # "approx5" (ISIC-like multiples of 5), "exact", "none"
    sex_missing: float
    sites: dict[str, float]
    site_missing: float
    id_style: str
    note: str
    license: str = "CC0-1.0 (synthetic)"
    namespace: str | None = None
    countries: tuple[str, ...] = field(default_factory=tuple)
    split_test: float = 0.0


_DERM_SITES = {"back": .25, "lower extremity": .2, "trunk": .12, "upper extremity": .12, "abdomen": .1, "face": .08,
               "chest": .05, "neck": .03, "scalp": .02, "foot": .02, "hand": .01}
_CLIN_SITES = {"FACE": .25, "FOREARM": .17, "CHEST": .12, "BACK": .11, "ARM": .08, "NOSE": .07, "HAND": .06,
               "NECK": .04, "THIGH": .04, "EAR": .03, "ABDOMEN": .02, "SCALP": .01}
_PEDS_SITES = {"head/neck": .3, "upper extremity": .25, "lower extremity": .2, "trunk": .2, "genital": .05}

SPECS: tuple[_Spec, ...] = (
    _Spec("SynDerm-Vienna", 2016, "dermoscopy", 0.20,
          {"nevus": .6, "melanoma": .12, "seborrheic keratosis": .1, "basal cell carcinoma": .06,
           "actinic keratosis": .04, "dermatofibroma": .04, "vascular lesion": .04},
          "Austria", "Europe", (.3, .5, .2, 0, 0, 0), .97, (52, 16), .05, "approx5", .03, _DERM_SITES, .1,
          "SDV_{:07d}", "dermoscopy from a European referral clinic"),
    _Spec("SynClinic-Atlas", 2017, "clinical", 0.20,
          {"psoriasis": .15, "eczema": .15, "acne": .12, "tinea": .1, "vitiligo": .08, "melanoma": .08,
           "basal cell carcinoma": .12, "squamous cell carcinoma": .1, "seborrheic keratosis": .1},
          None, None, (.18, .29, .2, .17, .1, .06), .04, (40, 20), 1.0, "none", 1.0, _CLIN_SITES, 1.0,
          "md5", "web atlas of clinical photographs (origin unknown), FST labelled"),
    _Spec("SynDerm-Queensland", 2018, "dermoscopy", 0.16,
          {"nevus": .45, "melanoma": .2, "basal cell carcinoma": .15, "seborrheic keratosis": .1,
           "actinic keratosis": .05, "squamous cell carcinoma": .05},
          "Australia", "Oceania", (.35, .45, .2, 0, 0, 0), .9, (58, 15), .02, "exact", .02, _DERM_SITES, .05,
          "ISYN_{:07d}", "dermoscopy archive, first release", namespace="SynArchive", split_test=0.2),
    _Spec("SynTBP-Tiles", 2018, "TBP", 0.12,
          {"nevus": .8, "seborrheic keratosis": .1, "melanoma": .03, "basal cell carcinoma": .04,
           "actinic keratosis": .03},
          "United States", "North America", (.3, .4, .2, .1, 0, 0), 1.0, (55, 14), .02, "approx5", .01,
          {"posterior torso": .35, "anterior torso": .3, "lower extremity": .2, "upper extremity": .15}, 0.0,
          "TBP_{:07d}", "total-body-photography tiles"),
    _Spec("SynPhone-Brazil", 2019, "clinical", 0.10,
          {"basal cell carcinoma": .37, "actinic keratosis": .32, "nevus": .1, "seborrheic keratosis": .1,
           "squamous cell carcinoma": .08, "melanoma": .03},
          "Brazil", "South America", (.1, .5, .28, .08, .03, .01), .35, (60, 15), 0.0, "exact", .35, _CLIN_SITES,
          0.0, "PAT", "smartphone photographs with rich patient metadata"),
    _Spec("SynClinic-Atlas-Lite", 2020, "clinical", 0.05, {}, None, None, (), 1.0, (0, 1), 1.0, "none", 1.0,
          {}, 1.0, "lite_{:05d}", "re-release subset of SynClinic-Atlas"),
    _Spec("SynArchive-2021", 2021, "dermoscopy", 0.10, {}, None, None, (.3, .45, .2, .05, 0, 0), .95, (55, 15),
          .1, "exact", .05, _DERM_SITES, .15, "ISYN_{:07d}", "archive re-release resampling earlier years",
          namespace="SynArchive"),
    _Spec("SynPeds-Africa", 2022, "clinical", 0.07,
          {"scabies": .35, "impetigo": .3, "atopic dermatitis": .35},
          None, "Africa", (0, 0, .05, .2, .4, .35), .05, (7, 4.5), .0, "exact", .05, _PEDS_SITES, .1,
          "PSN_{:05d}", "paediatric clinical photographs", countries=("Madagascar", "Guinea", "Malawi", "Tanzania"),
          split_test=0.25),
)
RESAMPLE_YEAR = 2021
NOVEL_YEAR = 2022
SUBSET = ("SynClinic-Atlas-Lite", "SynClinic-Atlas")


@dataclass
class SyntheticAtlas:
    """Where the atlas was written and its ground truth."""

    root: Path
    ground_truth: dict
    n_images: int
    n_rows: int


def _jpeg_bytes(img: Image.Image) -> bytes:
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
        with Image.open(io.BytesIO(_jpeg_bytes(im))) as out:
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


def _choice(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    p = np.array([probs[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _format_age(age: float, style: str, rng: np.random.Generator) -> str:
    if style == "approx5":
        return str(int(round(age / 5.0) * 5))
    if age < 2 and rng.random() < 0.5:
        return f"{int(round(age * 12))} months"
    return str(int(round(age)))


def generate_synthetic_atlas(
    root: str | Path,
    seed: int = 0,
    n_images: int = 1500,
    image_size: int = 64,
    *,
    n_exact_pairs: int = 14,
    n_near_pairs: int = 18,
    n_label_conflicts: int = 5,
    off_topic_frac: float = 0.01,
    hole_frac: float = 0.05,
    overwrite: bool = True,
) -> SyntheticAtlas:
    """Write a synthetic atlas of about ``n_images`` images under ``root`` and return its ground truth.

    The same ``seed`` and arguments give byte-identical files. ``n_images`` is the number of
    *base* images; planted copies and identifier re-releases come on top (roughly +10%).
    """
    if n_images < 200:
        raise ValueError(f"n_images={n_images} is too small to plant the structure (need >= 200)")
    if image_size < 32:
        raise ValueError(f"image_size={image_size} must be >= 32")
    root = Path(root)
    if root.exists() and overwrite:
        for child in root.iterdir():
            if child.is_dir() and ((child / "dataset.yml").exists() or child.name == "_synthetic"):
                shutil.rmtree(child)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = {k: np.array(v) for k, v in DIAGNOSIS_CENTRES.items()}
    rows: list[dict] = []  # one per image file (and metadata-only row for the missing-file case)
    files: dict[str, bytes] = {}  # uid -> bytes
    latents: dict[str, np.ndarray] = {}
    counters: dict[str, int] = {}

    def new_id(spec: _Spec) -> str:
        counters[spec.name] = counters.get(spec.name, 0) + 1
        k = counters[spec.name]
        if spec.id_style == "md5":
            return hashlib.md5(f"{seed}-{spec.name}-{k}".encode()).hexdigest()
        if spec.id_style == "PAT":
            return f"PAT_{1000 + k // 2}_{2000 + k}_{k}"
        if spec.name == "SynArchive-2021":  # continues the shared ISYN namespace after Queensland
            return spec.id_style.format(500000 + k)
        return spec.id_style.format(k)

    def demographics(spec: _Spec) -> dict:
        fst = int(rng.choice(6, p=np.array(spec.fst_probs) / sum(spec.fst_probs))) + 1 if spec.fst_probs else 3
        age = float(np.clip(rng.normal(*spec.age), 0.3, 95)) if spec.age[1] > 0 else None
        sex = "male" if rng.random() < 0.5 else "female"
        site = _choice(rng, spec.sites) if spec.sites else None
        country = spec.countries[int(rng.integers(len(spec.countries)))] if spec.countries else spec.country
        return {"fst_true": fst, "age_true": age, "sex_true": sex, "site_true": site, "country": country}

    def record(spec: _Spec, image_id: str, diagnosis: str, demo: dict, z: np.ndarray | None,
               data: bytes | None, **extra) -> dict:
        uid = f"{spec.name}/{image_id}"
        row = {
            "dataset": spec.name, "image_id": image_id, "uid": uid, "diagnosis": diagnosis,
            "fst": demo["fst_true"] if rng.random() >= spec.fst_missing else None,
            "age": (_format_age(demo["age_true"], spec.age_format, rng)
                    if demo["age_true"] is not None and spec.age_format != "none" and rng.random() >= spec.age_missing
                    else None),
            "sex": demo["sex_true"] if rng.random() >= spec.sex_missing else None,
            "body_site": demo["site_true"] if rng.random() >= spec.site_missing else None,
            "origin_country": demo["country"] if spec.countries else None,
            "split": ("test" if rng.random() < spec.split_test else "train") if spec.split_test else None,
            "patient_id": None, "lesion_id": None,
            "_fst_true": demo["fst_true"],
        }
        row.update(extra)
        rows.append(row)
        if data is not None:
            files[uid] = data
        if z is not None:
            latents[uid] = np.asarray(z, dtype=float)
        return row

    def draw(spec: _Spec, diagnosis: str, z: np.ndarray, demo: dict, nuisance: float = 1.0, **extra) -> dict:
        img = render_lesion(z, demo["fst_true"], spec.modality, rng, image_size, age=demo["age_true"],
                            sex=demo["sex_true"], nuisance=nuisance)
        return record(spec, new_id(spec), diagnosis, demo, z, _jpeg_bytes(img), **extra)

    spec_by_name = {s.name: s for s in SPECS}
    # 1. base images of the "ordinary" datasets
    for spec in SPECS:
        if not spec.diagnoses:
            continue
        for i in range(int(round(spec.frac * n_images))):
            diagnosis = _choice(rng, spec.diagnoses)
            z = centres[diagnosis] + rng.normal(0, CLUSTER_SD, LATENT_DIM)
            demo = demographics(spec)
            extra = {}
            if spec.name == "SynTBP-Tiles":
                extra["patient_id"] = f"TP_{i // 10:05d}"
            if spec.name == "SynPhone-Brazil":
                extra["patient_id"] = f"PAT_{1000 + (counters.get(spec.name, 0) + 1) // 2}"
            draw(spec, diagnosis, z, demo, **extra)
    # 2. the planted hole: a ring in (hue, size) inside the clinical atlas
    atlas = spec_by_name["SynClinic-Atlas"]
    n_ring = max(24, int(round(hole_frac * n_images)))
    ring_uids = []
    for j, angle in enumerate(np.linspace(0, 2 * np.pi, n_ring, endpoint=False)):
        angle = angle + rng.normal(0, 0.02)
        rad = HOLE_RADIUS + rng.normal(0, 0.04)
        z = np.array([HOLE_CENTRE[0] + rad * np.cos(angle), HOLE_CENTRE[1] + rad * np.sin(angle), *HOLE_OTHER_AXES])
        z[2:] += rng.normal(0, 0.08, LATENT_DIM - 2)
        demo = demographics(atlas)
        demo["fst_true"] = 2  # one source photographed the whole ring: skin tone is not a nuisance here
        ring_uids.append(draw(atlas, HOLE_DIAGNOSIS, z, demo, nuisance=0.0)["uid"])
    # 3. resample year: jittered copies of earlier dermoscopy latents
    archive = spec_by_name["SynArchive-2021"]
    earlier = [r for r in rows if r["dataset"] in ("SynDerm-Vienna", "SynDerm-Queensland")]
    resampled = []
    for _ in range(int(round(archive.frac * n_images))):
        src = earlier[int(rng.integers(len(earlier)))]
        z = latents[src["uid"]] + rng.normal(0, 0.25, LATENT_DIM)
        resampled.append(draw(archive, src["diagnosis"], z, demographics(archive)))
    # 4. identifier re-release: Queensland images re-published in the archive under the same id
    queensland = [r for r in rows if r["dataset"] == "SynDerm-Queensland"]
    n_rerelease = int(round(0.04 * n_images))
    rerelease_src = [queensland[i] for i in rng.choice(len(queensland), n_rerelease, replace=False)]
    id_duplicates = []
    for src in rerelease_src:
        row = dict(src)
        row.update(dataset=archive.name, uid=f"{archive.name}/{src['image_id']}",
                   body_site=None if rng.random() < 0.5 else src["body_site"], split=None)
        rows.append(row)
        files[row["uid"]] = files[src["uid"]]
        id_duplicates.append([src["uid"], row["uid"]])
    # 5. the re-release subset: byte copies of part of the clinical atlas under new ids
    lite = spec_by_name["SynClinic-Atlas-Lite"]
    atlas_rows = [r for r in rows if r["dataset"] == atlas.name and r["uid"] not in set(ring_uids)]
    n_lite = int(round(lite.frac * n_images))
    exact_pairs: list[list[str]] = []
    for idx in sorted(rng.choice(len(atlas_rows), n_lite, replace=False)):
        src = atlas_rows[int(idx)]
        image_id = new_id(lite)
        row = dict(src)
        row.update(dataset=lite.name, image_id=image_id, uid=f"{lite.name}/{image_id}")
        rows.append(row)
        files[row["uid"]] = files[src["uid"]]
        latents[row["uid"]] = latents[src["uid"]]
        exact_pairs.append([src["uid"], row["uid"]])
    # 6. the novel year's images are already drawn (SynPeds-Africa); 7. planted duplicates
    protected = set(ring_uids) | {u for pair in id_duplicates for u in pair} | {p[0] for p in exact_pairs}
    novel_name = next(s.name for s in SPECS if s.year == NOVEL_YEAR)
    # the novel year stays purely novel: no planted copies go into or come out of it
    candidates = [r for r in rows if r["uid"] in latents and r["uid"] not in protected
                  and r["dataset"] not in (lite.name, novel_name)]
    order = rng.permutation(len(candidates))
    picks = [candidates[int(i)] for i in order[: n_exact_pairs + n_near_pairs]]
    planted_exact, planted_near = [], []
    conflict_labels = list(DIAGNOSIS_CENTRES)[:8]
    for k, src in enumerate(picks):
        across = k % 2 == 1
        target_name = src["dataset"]
        if across:
            same_mod = [s.name for s in SPECS if s.diagnoses and s.name not in (src["dataset"], novel_name)
                        and s.modality == spec_by_name[src["dataset"]].modality]
            target_name = same_mod[int(rng.integers(len(same_mod)))] if same_mod else src["dataset"]
        target = spec_by_name[target_name]
        image_id = new_id(target)
        copy = {key: val for key, val in src.items()}
        copy.update(dataset=target.name, image_id=image_id, uid=f"{target.name}/{image_id}", split=None)
        if target.name != src["dataset"]:  # the copy gets the target dataset's metadata habits
            copy["origin_country"] = src["origin_country"] if target.countries else None
        data = files[src["uid"]]
        if k < n_exact_pairs:
            planted_exact.append([src["uid"], copy["uid"]])
        else:
            transform = NEAR_DUPLICATE_TRANSFORMS[(k - n_exact_pairs) % 3]
            with Image.open(io.BytesIO(data)) as im:
                data = _jpeg_bytes(near_duplicate(im.convert("RGB"), transform, rng))
            planted_near.append({"a": src["uid"], "b": copy["uid"], "transform": transform})
        rows.append(copy)
        files[copy["uid"]] = data
        latents[copy["uid"]] = latents[src["uid"]]
    # label conflicts: some planted pairs whose copy carries another diagnosis
    conflicts = []
    pair_uids = [tuple(p) for p in planted_exact] + [(p["a"], p["b"]) for p in planted_near]
    by_uid = {r["uid"]: r for r in rows}
    for j in rng.choice(len(pair_uids), min(n_label_conflicts, len(pair_uids)), replace=False):
        a, b = pair_uids[int(j)]
        options = [d for d in conflict_labels if d != by_uid[a]["diagnosis"]]
        by_uid[b]["diagnosis"] = options[int(rng.integers(len(options)))]
        conflicts.append([a, b])
    # 8. off-topic images in the web-like datasets
    off_topic = []
    kinds = OFF_TOPIC_KINDS
    for j in range(max(len(kinds), int(round(off_topic_frac * n_images)))):
        spec = atlas if j % 2 == 0 else archive
        label = _choice(rng, spec.diagnoses) if spec.diagnoses else "nevus"
        img = render_off_topic(kinds[j % len(kinds)], rng, image_size)
        z = np.full(LATENT_DIM, OFF_TOPIC_LATENT) + (j % len(kinds)) + rng.normal(0, 0.05, LATENT_DIM)
        off_topic.append(record(spec, new_id(spec), label, demographics(spec), z, _jpeg_bytes(img))["uid"])
    # 9. bad inputs among the resampled archive rows (never part of planted pairs)
    taken = {u for p in planted_exact for u in p} | {u for p in planted_near for u in (p["a"], p["b"])}
    pool = [r for r in resampled if r["uid"] not in taken]
    bad = {"truncated_image": [], "image_absent": [], "age_range": [], "unknown_body_site": [], "unknown_label": []}
    picks = [pool[int(i)] for i in rng.choice(len(pool), 9, replace=False)]
    for r in picks[:2]:
        files[r["uid"]] = files[r["uid"]][: len(files[r["uid"]]) // 2]
        latents.pop(r["uid"])
        bad["truncated_image"].append(r["uid"])
    r = picks[2]
    files.pop(r["uid"])
    latents.pop(r["uid"])
    bad["image_absent"].append(r["uid"])
    for r, age in zip(picks[3:5], ("45-50", "60 to 65")):
        r["age"] = age
        bad["age_range"].append(r["uid"])
    for r, site in zip(picks[5:7], ("elbow pit", "left big toe nailfold")):
        r["body_site"] = site
        bad["unknown_body_site"].append(r["uid"])
    for r in picks[7:9]:
        r["diagnosis"] = "dermatosis of unclear origin"
        bad["unknown_label"].append(r["uid"])
    picks[8]["age"] = "unknown"  # a missing token: documented NA, not an issue

    # ---- write the datasets
    frame = pd.DataFrame(rows)
    for spec in SPECS:
        folder = root / spec.name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        entry = {"name": spec.name, "release_year": spec.year, "modality": spec.modality,
                 "origin_country": spec.country, "origin_continent": spec.continent, "origin_note": spec.note,
                 "license": spec.license,
                 "citation": "SkinMap synthetic atlas (skinmap.data.synthetic), seed "
                             f"{seed}; generated, not real patients",
                 "id_namespace": spec.namespace or spec.name}
        (folder / "dataset.yml").write_text(yaml.safe_dump(entry, sort_keys=False), encoding="utf-8")
        sub = frame[frame["dataset"] == spec.name]
        meta = pd.DataFrame({
            "image_id": sub["image_id"], "file": "images/" + sub["image_id"] + ".jpg",
            "diagnosis": sub["diagnosis"], "lesion_id": sub["lesion_id"], "patient_id": sub["patient_id"],
            "split": sub["split"], "fst": sub["fst"].astype("Int64"), "age": sub["age"], "sex": sub["sex"],
            "body_site": sub["body_site"], "origin_country": sub["origin_country"],
        })
        meta.to_csv(folder / "metadata.csv", index=False, lineterminator="\n")
        for uid, image_id in zip(sub["uid"], sub["image_id"]):
            if uid in files:
                (folder / "images" / f"{image_id}.jpg").write_bytes(files[uid])
    # ---- ground truth
    gt_dir = root / "_synthetic"
    gt_dir.mkdir(exist_ok=True)
    latent_uids = [u for u in frame["uid"] if u in latents]
    latent = pd.DataFrame(np.stack([latents[u] for u in latent_uids]).astype("float32"),
                          columns=[f"z_{a}" for a in LATENT_AXES])
    latent.insert(0, "uid", latent_uids)
    latent.to_parquet(gt_dir / "latent.parquet", index=False)
    truth = {
        "seed": seed,
        "n_images": n_images,
        "image_size": image_size,
        "exact_duplicates": exact_pairs + planted_exact,
        "near_duplicates": planted_near,
        "label_conflicts": conflicts,
        "subset_pairs": [{"subset": SUBSET[0], "parent": SUBSET[1]}],
        "off_topic": off_topic,
        "resample_year": RESAMPLE_YEAR,
        "novel_year": NOVEL_YEAR,
        "planted_hole": {
            "uids": ring_uids,
            "description": (f"{len(ring_uids)} '{HOLE_DIAGNOSIS}' images on a circle of radius {HOLE_RADIUS} "
                            f"around an empty centre {list(HOLE_CENTRE)} in latent axes (hue, size), other axes "
                            f"fixed at {list(HOLE_OTHER_AXES)}; no image lies near the centre"),
            "latent_axes": ["hue", "size"],
            "centre": list(HOLE_CENTRE),
            "radius": HOLE_RADIUS,
        },
        "identifier_duplicates": id_duplicates,
        "bad_inputs": bad,
        "latent_axes": list(LATENT_AXES),
        "fst_true": {u: int(f) for u, f in zip(frame["uid"], frame["_fst_true"]) if u in latents},
    }
    (gt_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return SyntheticAtlas(root=root, ground_truth=truth, n_images=len(files), n_rows=len(frame))


def latent_for_catalog(catalog: pd.DataFrame, atlas_root: str | Path) -> np.ndarray:
    """Latent vectors (float32, n x 8) aligned with the catalog rows that have pixels (path not NA).

    Rows whose image was generated off the latent (off-topic) carry their far-away placeholder.
    """
    latent = pd.read_parquet(Path(atlas_root) / "_synthetic" / "latent.parquet")
    table = latent.set_index("uid")
    uids = catalog.loc[catalog["path"].notna(), "uid"].astype(str)
    missing = sorted(set(uids) - set(table.index))
    if missing:
        raise KeyError(f"{len(missing)} catalog images have no latent, e.g. {missing[:3]}")
    return table.loc[list(uids)].to_numpy(dtype="float32")
