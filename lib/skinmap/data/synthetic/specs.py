"""What the synthetic atlas contains: its eight datasets and the planted structure's constants.

Each :class:`DatasetSpec` describes one dataset (release year, modality, share of the base images,
diagnosis mix, demographics and how often each field is missing, id style); the constants say
where the planted hole lies, which year resamples earlier ones and which year is novel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DatasetSpec", "SPECS", "RESAMPLE_YEAR", "NOVEL_YEAR", "SUBSET", "HOLE_CENTRE", "HOLE_RADIUS",
           "HOLE_OTHER_AXES", "HOLE_DIAGNOSIS", "OFF_TOPIC_LATENT"]

# The planted hole: a circle in axes (hue, size) with the other axes fixed at an unused corner.
HOLE_CENTRE = (-1.0, 1.0)  # mid-to-large lesions: small ones all look alike to a CNN
HOLE_RADIUS = 1.4
HOLE_OTHER_AXES = (1.6, -2.6, 2.0, -2.6, -1.5, -2.2)  # dark, smooth, elongated, plain
HOLE_DIAGNOSIS = "lichen planus"
OFF_TOPIC_LATENT = 6.0  # off-topic images are not drawn from the latent; they sit far from everything


@dataclass(frozen=True)
class DatasetSpec:
    """One synthetic dataset: what it holds and how its metadata is recorded."""

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

SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec("SynDerm-Vienna", 2016, "dermoscopy", 0.20,
               {"nevus": .6, "melanoma": .12, "seborrheic keratosis": .1, "basal cell carcinoma": .06,
           "actinic keratosis": .04, "dermatofibroma": .04, "vascular lesion": .04},
               "Austria", "Europe", (.3, .5, .2, 0, 0, 0), .97, (52, 16), .05, "approx5", .03, _DERM_SITES, .1,
               "SDV_{:07d}", "dermoscopy from a European referral clinic"),
    DatasetSpec("SynClinic-Atlas", 2017, "clinical", 0.20,
               {"psoriasis": .15, "eczema": .15, "acne": .12, "tinea": .1, "vitiligo": .08, "melanoma": .08,
           "basal cell carcinoma": .12, "squamous cell carcinoma": .1, "seborrheic keratosis": .1},
               None, None, (.18, .29, .2, .17, .1, .06), .04, (40, 20), 1.0, "none", 1.0, _CLIN_SITES, 1.0,
               "md5", "web atlas of clinical photographs (origin unknown), FST labelled"),
    DatasetSpec("SynDerm-Queensland", 2018, "dermoscopy", 0.16,
               {"nevus": .45, "melanoma": .2, "basal cell carcinoma": .15, "seborrheic keratosis": .1,
           "actinic keratosis": .05, "squamous cell carcinoma": .05},
               "Australia", "Oceania", (.35, .45, .2, 0, 0, 0), .9, (58, 15), .02, "exact", .02, _DERM_SITES, .05,
               "ISYN_{:07d}", "dermoscopy archive, first release", namespace="SynArchive", split_test=0.2),
    DatasetSpec("SynTBP-Tiles", 2018, "TBP", 0.12,
               {"nevus": .8, "seborrheic keratosis": .1, "melanoma": .03, "basal cell carcinoma": .04,
           "actinic keratosis": .03},
               "United States", "North America", (.3, .4, .2, .1, 0, 0), 1.0, (55, 14), .02, "approx5", .01,
               {"posterior torso": .35, "anterior torso": .3, "lower extremity": .2, "upper extremity": .15}, 0.0,
               "TBP_{:07d}", "total-body-photography tiles"),
    DatasetSpec("SynPhone-Brazil", 2019, "clinical", 0.10,
               {"basal cell carcinoma": .37, "actinic keratosis": .32, "nevus": .1, "seborrheic keratosis": .1,
           "squamous cell carcinoma": .08, "melanoma": .03},
               "Brazil", "South America", (.1, .5, .28, .08, .03, .01), .35, (60, 15), 0.0, "exact", .35, _CLIN_SITES,
               0.0, "PAT", "smartphone photographs with rich patient metadata"),
    DatasetSpec("SynClinic-Atlas-Lite", 2020, "clinical", 0.05, {}, None, None, (), 1.0, (0, 1), 1.0, "none", 1.0,
               {}, 1.0, "lite_{:05d}", "re-release subset of SynClinic-Atlas"),
    DatasetSpec("SynArchive-2021", 2021, "dermoscopy", 0.10, {}, None, None, (.3, .45, .2, .05, 0, 0), .95, (55, 15),
               .1, "exact", .05, _DERM_SITES, .15, "ISYN_{:07d}", "archive re-release resampling earlier years",
               namespace="SynArchive"),
    DatasetSpec("SynPeds-Africa", 2022, "clinical", 0.07,
               {"scabies": .35, "impetigo": .3, "atopic dermatitis": .35},
               None, "Africa", (0, 0, .05, .2, .4, .35), .05, (7, 4.5), .0, "exact", .05, _PEDS_SITES, .1,
               "PSN_{:05d}", "paediatric clinical photographs",
               countries=("Madagascar", "Guinea", "Malawi", "Tanzania"),
               split_test=0.25),
)
RESAMPLE_YEAR = 2021
NOVEL_YEAR = 2022
SUBSET = ("SynClinic-Atlas-Lite", "SynClinic-Atlas")
