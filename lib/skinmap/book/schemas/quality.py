"""Parameters of chapter 02-quality (the data-quality audit, methods.md section 10).

The ``verify_<name>`` fields are the library's
:class:`~skinmap.analysis.quality.verification.CopyVerificationConfig` (``<name>``): their defaults,
ranges and descriptions come from its declaration, and the chapter builds the config once with
``CopyVerificationConfig.from_params``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from skinmap.book.schemas import resolve_path
from skinmap.book.schemas._copy_verification import CopyVerificationParams

DEPENDS_ON: tuple[str, ...] = ("data", "embedding")

#: Old parameter names still accepted (with a deprecation message naming the new one).
RENAMED_KEYS: dict[str, str] = {
    "knn_k": "n_neighbors",
    "verify_candidates_k": "verify_n_candidates",
    "offtopic_k": "offtopic_n_neighbors",
}


class Params(CopyVerificationParams):
    embedding_source: str = Field(
        "efficientnet_lite0",
        min_length=1,
        description='"fused" (embedding/fused.npy), a member name (embedding/members/<member>.npy), or "pixels" '
        "(a mirror- and colour-invariant thumbnail descriptor computed here)",
    )
    thresholds: list[float] = Field(
        [0.90, 0.95], min_length=1, description="cosine-similarity thresholds for near-duplicate pairs"
    )
    default_threshold: float = Field(
        0.95, gt=0, le=1, description="threshold whose clusters drive the cleaning (must be one of `thresholds`)"
    )
    n_neighbors: int = Field(20, ge=1, le=1000, description="neighbours searched per image for duplicate pairs")
    mutual_top: int = Field(
        1, ge=0, le=100, description="keep a pair only if each image is among the other's r nearest neighbours (0 = off)"
    )
    mirror_invariant: bool = Field(
        True,
        description="average each image's member vector with that of its horizontal mirror before the duplicate "
        "search (re-embeds the mirrored images; only for a frozen efficientnet_lite0 embedding_source)",
    )
    whiten_dims: int = Field(
        256, ge=0, le=4096,
        description="PCA-whitening dimensions fitted on the dataset before the duplicate search (0 = raw cosine, "
        "the plain rule); capped below the number of images and the vector dimension (the chapter says so)",
    )
    whiten_power: float = Field(
        0.5, ge=0, le=1, description="exponent of the variances divided out (0.5 = full whitening, <0.5 = shrunk)"
    )
    verify_pairs: bool = Field(
        True,
        description="decide candidate pairs by registered pixel correlation (mirror, crop scale and offset searched "
        "on high-passed luminance thumbnails); False = threshold the embedding similarity itself",
    )
    # verify_*: the copy-verification knobs, inherited from CopyVerificationParams (declared once)
    conflict_label: str = Field(
        "diagnosis", min_length=1, description="catalog column compared within a duplicate cluster (e.g. icd10_code)"
    )
    offtopic_n_neighbors: int = Field(30, ge=1, le=1000, description="neighbours in the off-topic score o(i)")
    offtopic_z: float = Field(3.0, gt=0, description="robust z-score of o(i) above which an image is dropped as off-topic")
    split_fractions: tuple[float, float, float] = Field(
        (0.7, 0.1, 0.2), description="train/validation/test fractions (multiples of 0.1)"
    )
    split_seed: int = Field(0, ge=0, description="seed of the stratified group split")
    gallery_pairs: int = Field(8, ge=0, le=200, description="candidate pairs shown in the review gallery")
    gallery_offtopic: int = Field(8, ge=0, le=200, description="top-ranked off-topic images shown")
    review_csv: str | None = Field(
        None, description="filled review CSV (image_a,image_b,decision) relative to the project root; None = no review yet"
    )
    peer_comparison_csv: str | None = Field(
        "runs/bench/demo/peer_comparison.csv", description="the peers' comparison table written by make bench-quality, relative to the project root; "
        "shown as 'how our detectors compare' when the file exists (None or absent: the chapter says how to make it)"
    )
    dermamnist_split_csv: str | None = Field(
        None, description="DermaMNIST split table (split,index,image_id); None = leakage on the catalog's own splits"
    )
    ham10000_metadata_csv: str | None = Field(None, description="HAM10000 metadata (lesion_id,image_id,dx,...)")
    dermamnist_duplicates_csv: str | None = Field(
        None, description="confirmed duplicate pairs not linked by lesion_id (similarity,from_img,to_img)"
    )
    dermamnist_c_released_sizes: dict[str, int] | None = Field(
        None, description="DermaMNIST-C partition sizes as released (for comparison with corrections a, b, c)"
    )
    dermamnist_e_released_sizes: dict[str, int] | None = Field(
        None, description="DermaMNIST-E partition sizes as released (compared with the construction from the data at hand)"
    )
    isic2018_test_csv: str | None = Field(
        None, description="ISIC 2018 Task 3 test ground truth (image,MEL,...) for DermaMNIST-E; None = not built"
    )
    fitzpatrick17k_csv: str | None = Field(
        None, description="Fitzpatrick17k's metadata table (fitzpatrick17k.csv) audited from the table alone; None = skipped"
    )
    critique_dataset: str | None = Field(
        None, description="dataset whose lesion multiplicity and most similar pairs are reviewed in the critique's "
        "units (None = the DermaMNIST source HAM10000 when given, else the dataset with the most leaking lesions)"
    )
    critique_top_pairs: int = Field(
        1000, ge=10, le=100000, description="most similar image pairs reviewed against the lesion ids (the critique: 1,000)"
    )
    critique_bin_size: int = Field(100, ge=1, le=100000, description="ranks per review interval (the critique: 100)")
    critique_n_neighbors: int = Field(
        50, ge=1, le=1000, description="neighbours searched per image for the critique's raw-cosine rule (saturation is reported)"
    )
    resolution_images_dir: str | None = Field(
        None, description="folder of real images for the resolution pitfall; None = the catalog's images"
    )
    resolution_n_images: int = Field(
        120, ge=10, le=20000,
        description="images used by the resolution probe (2 versions each; with efficientnet_lite0 features on 2 "
        "busy CPU cores about 1 s per image)")
    resolution_low: int = Field(28, ge=4, le=512, description="low resolution (px) of the DermaMNIST-style version")
    resolution_size: int = Field(224, ge=16, le=1024, description="size (px) both versions are brought to")
    probe_top_classes: int = Field(4, ge=2, le=100, description="the probe classifies the most frequent diagnoses only")
    probe_features: Literal["pixels", "efficientnet_lite0"] = Field(
        "pixels", description="frozen feature under the logistic-regression probe"
    )

    @model_validator(mode="after")
    def _check(self) -> "Params":
        if any(not 0 < t <= 1 for t in self.thresholds):
            raise ValueError(f"thresholds must lie in (0, 1], got {self.thresholds}")
        if self.default_threshold not in self.thresholds:
            raise ValueError(f"default_threshold {self.default_threshold} is not one of thresholds {self.thresholds}")
        if abs(sum(self.split_fractions) - 1) > 1e-9 or any(round(f * 10, 9) % 1 for f in self.split_fractions):
            raise ValueError(f"split_fractions must be multiples of 0.1 summing to 1, got {self.split_fractions}")
        if self.mirror_invariant and self.embedding_source != "efficientnet_lite0":
            raise ValueError("mirror_invariant re-embeds mirrored images with the frozen member and needs "
                             f"embedding_source 'efficientnet_lite0', got {self.embedding_source!r}")
        if self.mutual_top > self.n_neighbors:
            raise ValueError(f"mutual_top {self.mutual_top} exceeds n_neighbors {self.n_neighbors}: each image's "
                             "neighbours beyond the n_neighbors searched are not known")
        if self.critique_bin_size > self.critique_top_pairs:
            raise ValueError(f"critique_bin_size {self.critique_bin_size} exceeds critique_top_pairs {self.critique_top_pairs}")
        if self.resolution_low >= self.resolution_size:
            raise ValueError("resolution_low must be smaller than resolution_size")
        return self


def external_inputs(params: Params, project_root: Path) -> list[Path]:
    """Data read from outside the run directory (fingerprinted into the cache key)."""
    paths = [params.dermamnist_split_csv, params.ham10000_metadata_csv, params.dermamnist_duplicates_csv,
             params.review_csv, params.resolution_images_dir, params.isic2018_test_csv, params.fitzpatrick17k_csv]
    found = [resolve_path(p, project_root) for p in paths if p]
    if params.peer_comparison_csv:  # optional: fingerprinted once it exists, so a new bench run re-executes
        peer = resolve_path(params.peer_comparison_csv, project_root)
        found += [peer] if peer.is_file() else []
    return found
