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

Modules: :mod:`.render` (the latent space and the pictures), :mod:`.specs` (the datasets and the
planted structure's constants), :mod:`.atlas` (generation, step by step, and reading the ground
truth back), :mod:`.copy_detection` (an independent copy-detection test bed).
"""

from skinmap.data.synthetic.atlas import SyntheticAtlas, generate_synthetic_atlas, latent_for_catalog, read_ground_truth
from skinmap.data.synthetic.copy_detection import copy_detection_set
from skinmap.data.synthetic.render import (
    DIAGNOSIS_CENTRES,
    LATENT_AXES,
    NEAR_DUPLICATE_TRANSFORMS,
    OFF_TOPIC_KINDS,
    near_duplicate,
    render_lesion,
    render_off_topic,
)
from skinmap.data.synthetic.specs import HOLE_CENTRE, HOLE_OTHER_AXES, HOLE_RADIUS, NOVEL_YEAR, RESAMPLE_YEAR

__all__ = [
    "LATENT_AXES",
    "DIAGNOSIS_CENTRES",
    "HOLE_CENTRE",
    "HOLE_RADIUS",
    "HOLE_OTHER_AXES",
    "RESAMPLE_YEAR",
    "NOVEL_YEAR",
    "SyntheticAtlas",
    "generate_synthetic_atlas",
    "latent_for_catalog",
    "read_ground_truth",
    "render_lesion",
    "near_duplicate",
    "NEAR_DUPLICATE_TRANSFORMS",
    "copy_detection_set",
    "render_off_topic",
    "OFF_TOPIC_KINDS",
]
