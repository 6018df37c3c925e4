"""Generating the synthetic atlas: draw the images and their metadata, plant the structure, write
the datasets in the generic layout and the ground truth beside them.

:func:`generate_synthetic_atlas` runs the numbered steps below in a fixed order on one random
generator, so the same seed and arguments give byte-identical files (reordering two steps, or two
draws inside a step, changes every later image).
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
from PIL import Image

from skinmap.data.synthetic.render import (
    CLUSTER_SD,
    DIAGNOSIS_CENTRES,
    LATENT_AXES,
    LATENT_DIM,
    NEAR_DUPLICATE_TRANSFORMS,
    OFF_TOPIC_KINDS,
    jpeg_bytes,
    near_duplicate,
    render_lesion,
    render_off_topic,
)
from skinmap.data.synthetic.specs import (
    HOLE_CENTRE,
    HOLE_DIAGNOSIS,
    HOLE_OTHER_AXES,
    HOLE_RADIUS,
    NOVEL_YEAR,
    OFF_TOPIC_LATENT,
    RESAMPLE_YEAR,
    SPECS,
    SUBSET,
    DatasetSpec,
)

__all__ = ["SyntheticAtlas", "generate_synthetic_atlas", "read_ground_truth", "latent_for_catalog"]

# The atlas's own layout (inside the dataset root, not a run directory): ground truth beside the datasets.
_TRUTH_FOLDER = "_synthetic"
_TRUTH_FILE = "ground_truth.json"
_LATENT_FILE = "latent.parquet"


@dataclass
class SyntheticAtlas:
    """Where the atlas was written and its ground truth."""

    root: Path
    ground_truth: dict
    n_images: int
    n_rows: int


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


@dataclass
class _Draws:
    """The state every step shares: the one random generator and what has been drawn so far."""

    rng: np.random.Generator
    seed: int
    image_size: int
    rows: list[dict] = field(default_factory=list)  # one per image file (and metadata-only rows)
    files: dict[str, bytes] = field(default_factory=dict)  # uid -> bytes
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def new_id(self, spec: DatasetSpec) -> str:
        self.counters[spec.name] = self.counters.get(spec.name, 0) + 1
        k = self.counters[spec.name]
        if spec.id_style == "md5":
            return hashlib.md5(f"{self.seed}-{spec.name}-{k}".encode()).hexdigest()
        if spec.id_style == "PAT":
            return f"PAT_{1000 + k // 2}_{2000 + k}_{k}"
        if spec.name == "SynArchive-2021":  # continues the shared ISYN namespace after Queensland
            return spec.id_style.format(500000 + k)
        return spec.id_style.format(k)

    def demographics(self, spec: DatasetSpec) -> dict:
        rng = self.rng
        fst = int(rng.choice(6, p=np.array(spec.fst_probs) / sum(spec.fst_probs))) + 1 if spec.fst_probs else 3
        age = float(np.clip(rng.normal(*spec.age), 0.3, 95)) if spec.age[1] > 0 else None
        sex = "male" if rng.random() < 0.5 else "female"
        site = _choice(rng, spec.sites) if spec.sites else None
        country = spec.countries[int(rng.integers(len(spec.countries)))] if spec.countries else spec.country
        return {"fst_true": fst, "age_true": age, "sex_true": sex, "site_true": site, "country": country}

    def record(self, spec: DatasetSpec, image_id: str, diagnosis: str, demo: dict, z: np.ndarray | None,
               data: bytes | None, **extra) -> dict:
        """Add one row (its recorded metadata drawn from the true demographics) and its image."""
        rng = self.rng
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
        self.rows.append(row)
        if data is not None:
            self.files[uid] = data
        if z is not None:
            self.latents[uid] = np.asarray(z, dtype=float)
        return row

    def draw(self, spec: DatasetSpec, diagnosis: str, z: np.ndarray, demo: dict, nuisance: float = 1.0,
             **extra) -> dict:
        """Render a lesion from latent ``z`` and record it under a new id."""
        img = render_lesion(z, demo["fst_true"], spec.modality, self.rng, self.image_size, age=demo["age_true"],
                            sex=demo["sex_true"], nuisance=nuisance)
        return self.record(spec, self.new_id(spec), diagnosis, demo, z, jpeg_bytes(img), **extra)


_SPEC_BY_NAME = {s.name: s for s in SPECS}


def _base_images(d: _Draws, n_images: int) -> None:
    """Step 1: the base images of the "ordinary" datasets, each diagnosis a cluster in latent space."""
    centres = {k: np.array(v) for k, v in DIAGNOSIS_CENTRES.items()}
    for spec in SPECS:
        if not spec.diagnoses:
            continue
        for i in range(int(round(spec.frac * n_images))):
            diagnosis = _choice(d.rng, spec.diagnoses)
            z = centres[diagnosis] + d.rng.normal(0, CLUSTER_SD, LATENT_DIM)
            demo = d.demographics(spec)
            extra = {}
            if spec.name == "SynTBP-Tiles":
                extra["patient_id"] = f"TP_{i // 10:05d}"
            if spec.name == "SynPhone-Brazil":
                extra["patient_id"] = f"PAT_{1000 + (d.counters.get(spec.name, 0) + 1) // 2}"
            d.draw(spec, diagnosis, z, demo, **extra)


def _planted_hole(d: _Draws, n_images: int, hole_frac: float) -> list[str]:
    """Step 2: the planted hole, a ring in (hue, size) inside the clinical atlas; returns its uids."""
    atlas = _SPEC_BY_NAME["SynClinic-Atlas"]
    n_ring = max(24, int(round(hole_frac * n_images)))
    ring_uids = []
    for angle in np.linspace(0, 2 * np.pi, n_ring, endpoint=False):
        angle = angle + d.rng.normal(0, 0.02)
        rad = HOLE_RADIUS + d.rng.normal(0, 0.04)
        z = np.array([HOLE_CENTRE[0] + rad * np.cos(angle), HOLE_CENTRE[1] + rad * np.sin(angle), *HOLE_OTHER_AXES])
        z[2:] += d.rng.normal(0, 0.08, LATENT_DIM - 2)
        demo = d.demographics(atlas)
        demo["fst_true"] = 2  # one source photographed the whole ring: skin tone is not a nuisance here
        ring_uids.append(d.draw(atlas, HOLE_DIAGNOSIS, z, demo, nuisance=0.0)["uid"])
    return ring_uids


def _resample_year(d: _Draws, n_images: int) -> list[dict]:
    """Step 3: the resample year, jittered copies of earlier dermoscopy latents; returns its rows."""
    archive = _SPEC_BY_NAME["SynArchive-2021"]
    earlier = [r for r in d.rows if r["dataset"] in ("SynDerm-Vienna", "SynDerm-Queensland")]
    resampled = []
    for _ in range(int(round(archive.frac * n_images))):
        src = earlier[int(d.rng.integers(len(earlier)))]
        z = d.latents[src["uid"]] + d.rng.normal(0, 0.25, LATENT_DIM)
        resampled.append(d.draw(archive, src["diagnosis"], z, d.demographics(archive)))
    return resampled


def _identifier_rereleases(d: _Draws, n_images: int) -> list[list[str]]:
    """Step 4: Queensland images re-published in the archive under the same id; returns the
    (original uid, re-released uid) pairs."""
    archive = _SPEC_BY_NAME["SynArchive-2021"]
    queensland = [r for r in d.rows if r["dataset"] == "SynDerm-Queensland"]
    n_rerelease = int(round(0.04 * n_images))
    rerelease_src = [queensland[i] for i in d.rng.choice(len(queensland), n_rerelease, replace=False)]
    id_duplicates = []
    for src in rerelease_src:
        row = dict(src)
        row.update(dataset=archive.name, uid=f"{archive.name}/{src['image_id']}",
                   body_site=None if d.rng.random() < 0.5 else src["body_site"], split=None)
        d.rows.append(row)
        d.files[row["uid"]] = d.files[src["uid"]]
        id_duplicates.append([src["uid"], row["uid"]])
    return id_duplicates


def _subset_release(d: _Draws, n_images: int, ring_uids: list[str]) -> list[list[str]]:
    """Step 5: the re-release subset, byte copies of part of the clinical atlas under new ids;
    returns the (parent uid, subset uid) pairs."""
    lite = _SPEC_BY_NAME["SynClinic-Atlas-Lite"]
    atlas_rows = [r for r in d.rows if r["dataset"] == "SynClinic-Atlas" and r["uid"] not in set(ring_uids)]
    n_lite = int(round(lite.frac * n_images))
    exact_pairs: list[list[str]] = []
    for idx in sorted(d.rng.choice(len(atlas_rows), n_lite, replace=False)):
        src = atlas_rows[int(idx)]
        image_id = d.new_id(lite)
        row = dict(src)
        row.update(dataset=lite.name, image_id=image_id, uid=f"{lite.name}/{image_id}")
        d.rows.append(row)
        d.files[row["uid"]] = d.files[src["uid"]]
        d.latents[row["uid"]] = d.latents[src["uid"]]
        exact_pairs.append([src["uid"], row["uid"]])
    return exact_pairs


def _planted_duplicates(d: _Draws, protected: set[str], n_exact_pairs: int,
                        n_near_pairs: int) -> tuple[list[list[str]], list[dict]]:
    """Step 7: exact and near duplicates of images outside ``protected``, every other one copied
    into another dataset of the same modality; returns the exact pairs and the near pairs."""
    # step 6 needs no draw: the novel year's images (SynPeds-Africa) are already drawn in step 1
    lite_name = _SPEC_BY_NAME["SynClinic-Atlas-Lite"].name
    novel_name = next(s.name for s in SPECS if s.year == NOVEL_YEAR)
    # the novel year stays purely novel: no planted copies go into or come out of it
    candidates = [r for r in d.rows if r["uid"] in d.latents and r["uid"] not in protected
                  and r["dataset"] not in (lite_name, novel_name)]
    order = d.rng.permutation(len(candidates))
    picks = [candidates[int(i)] for i in order[: n_exact_pairs + n_near_pairs]]
    planted_exact, planted_near = [], []
    for k, src in enumerate(picks):
        across = k % 2 == 1
        target_name = src["dataset"]
        if across:
            same_mod = [s.name for s in SPECS if s.diagnoses and s.name not in (src["dataset"], novel_name)
                        and s.modality == _SPEC_BY_NAME[src["dataset"]].modality]
            target_name = same_mod[int(d.rng.integers(len(same_mod)))] if same_mod else src["dataset"]
        target = _SPEC_BY_NAME[target_name]
        image_id = d.new_id(target)
        copy = {key: val for key, val in src.items()}
        copy.update(dataset=target.name, image_id=image_id, uid=f"{target.name}/{image_id}", split=None)
        if target.name != src["dataset"]:  # the copy gets the target dataset's metadata habits
            copy["origin_country"] = src["origin_country"] if target.countries else None
        data = d.files[src["uid"]]
        if k < n_exact_pairs:
            planted_exact.append([src["uid"], copy["uid"]])
        else:
            transform = NEAR_DUPLICATE_TRANSFORMS[(k - n_exact_pairs) % 3]
            with Image.open(io.BytesIO(data)) as im:
                data = jpeg_bytes(near_duplicate(im.convert("RGB"), transform, d.rng))
            planted_near.append({"a": src["uid"], "b": copy["uid"], "transform": transform})
        d.rows.append(copy)
        d.files[copy["uid"]] = data
        d.latents[copy["uid"]] = d.latents[src["uid"]]
    return planted_exact, planted_near


def _label_conflicts(d: _Draws, planted_exact: list[list[str]], planted_near: list[dict],
                     n_label_conflicts: int) -> list[list[str]]:
    """Step 7 (continued): some planted pairs whose copy carries another diagnosis."""
    conflict_labels = list(DIAGNOSIS_CENTRES)[:8]
    conflicts = []
    pair_uids = [tuple(p) for p in planted_exact] + [(p["a"], p["b"]) for p in planted_near]
    by_uid = {r["uid"]: r for r in d.rows}
    for j in d.rng.choice(len(pair_uids), min(n_label_conflicts, len(pair_uids)), replace=False):
        a, b = pair_uids[int(j)]
        options = [x for x in conflict_labels if x != by_uid[a]["diagnosis"]]
        by_uid[b]["diagnosis"] = options[int(d.rng.integers(len(options)))]
        conflicts.append([a, b])
    return conflicts


def _off_topic(d: _Draws, n_images: int, off_topic_frac: float) -> list[str]:
    """Step 8: off-topic images in the two web-like datasets; returns their uids."""
    atlas, archive = _SPEC_BY_NAME["SynClinic-Atlas"], _SPEC_BY_NAME["SynArchive-2021"]
    off_topic = []
    kinds = OFF_TOPIC_KINDS
    for j in range(max(len(kinds), int(round(off_topic_frac * n_images)))):
        spec = atlas if j % 2 == 0 else archive
        label = _choice(d.rng, spec.diagnoses) if spec.diagnoses else "nevus"
        img = render_off_topic(kinds[j % len(kinds)], d.rng, d.image_size)
        z = np.full(LATENT_DIM, OFF_TOPIC_LATENT) + (j % len(kinds)) + d.rng.normal(0, 0.05, LATENT_DIM)
        off_topic.append(d.record(spec, d.new_id(spec), label, d.demographics(spec), z, jpeg_bytes(img))["uid"])
    return off_topic


def _bad_inputs(d: _Draws, resampled: list[dict], taken: set[str]) -> dict[str, list[str]]:
    """Step 9: bad inputs among the resampled archive rows outside ``taken`` (the planted pairs);
    returns kind -> uids."""
    pool = [r for r in resampled if r["uid"] not in taken]
    bad = {"truncated_image": [], "image_absent": [], "age_range": [], "unknown_body_site": [], "unknown_label": []}
    picks = [pool[int(i)] for i in d.rng.choice(len(pool), 9, replace=False)]
    for r in picks[:2]:
        d.files[r["uid"]] = d.files[r["uid"]][: len(d.files[r["uid"]]) // 2]
        d.latents.pop(r["uid"])
        bad["truncated_image"].append(r["uid"])
    r = picks[2]
    d.files.pop(r["uid"])
    d.latents.pop(r["uid"])
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
    return bad


def _lesions_and_patients(d: _Draws, seed: int) -> dict:
    """Step 10: lesion ids in the dermoscopy archive and patient ids in the paediatric set, with
    cross-partition leakage, drawn from a generator of their own so that every earlier draw (and so
    every image and every other field) stays exactly as without this step.

    SynDerm-Queensland gets a validation partition (a tenth of its training images) and lesions of
    two or three images: an anchor and its nearest latents of the same diagnosis (re-shots of one
    lesion look alike); every other image is its own lesion. SynPeds-Africa's images are grouped
    into patients of one to three consecutive images. Partitions stay as drawn, so some lesions and
    patients straddle partitions (the planted leakage). Returns the ground truth: per dataset the
    grouping column, every multi-image group's uids and, counted here by brute force over the
    groups, the leaking groups, their images and cross-partition pairs per partition pair.
    """
    rng = np.random.default_rng([seed, 10])
    truth = {}
    queensland = [r for r in d.rows if r["dataset"] == "SynDerm-Queensland" and r["split"] is not None
                  and r["uid"] in d.latents]
    for r in queensland:
        if r["split"] == "train" and rng.random() < 0.1:
            r["split"] = "val"
    free = {r["uid"] for r in queensland}
    by_uid = {r["uid"]: r for r in queensland}
    groups: dict[str, list[str]] = {}
    n_multi = int(round(0.12 * len(queensland)))
    order = [queensland[int(i)] for i in rng.permutation(len(queensland))]
    for anchor in order:
        if len(groups) >= n_multi:
            break
        if anchor["uid"] not in free:
            continue
        same = [u for u in free if u != anchor["uid"] and by_uid[u]["diagnosis"] == anchor["diagnosis"]]
        if not same:
            continue
        size = 2 if rng.random() < 0.7 else 3
        dist = [float(np.linalg.norm(d.latents[u] - d.latents[anchor["uid"]])) for u in sorted(same)]
        members = [anchor["uid"]] + [sorted(same)[int(k)] for k in np.argsort(dist, kind="stable")[: size - 1]]
        groups[f"LQ_{len(groups) + 1:06d}"] = members
        free -= set(members)
    for lesion, members in groups.items():
        for u in members:
            by_uid[u]["lesion_id"] = lesion
    for k, u in enumerate(sorted(free)):
        by_uid[u]["lesion_id"] = f"LQ_{n_multi + k + 1:06d}"
    truth["SynDerm-Queensland"] = {"group_by": "lesion_id", "groups": groups}

    peds = [r for r in d.rows if r["dataset"] == "SynPeds-Africa" and r["split"] is not None]
    patients: dict[str, list[str]] = {}
    k = 0
    while k < len(peds):
        size = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
        pid = f"PP_{len(patients) + 1:05d}"
        patients[pid] = [r["uid"] for r in peds[k:k + size]]
        for r in peds[k:k + size]:
            r["patient_id"] = pid
        k += size
    truth["SynPeds-Africa"] = {"group_by": "patient_id",
                               "groups": {p: u for p, u in patients.items() if len(u) > 1}}

    split_of = {r["uid"]: r["split"] for r in d.rows if r["split"] is not None}
    for name, entry in truth.items():
        names = sorted({split_of[u] for u in split_of if u.startswith(name + "/")},
                       key=lambda p: ("train", "val", "test").index(p))
        leakage = {}
        for a_i, a in enumerate(names):
            for b in names[a_i + 1:]:
                n_groups = n_images = n_pairs = 0
                for members in entry["groups"].values():
                    in_a = [u for u in members if split_of.get(u) == a]
                    in_b = [u for u in members if split_of.get(u) == b]
                    if in_a and in_b:
                        n_groups += 1
                        n_images += len(in_a) + len(in_b)
                        n_pairs += len(in_a) * len(in_b)
                leakage[f"{a}|{b}"] = {"groups": n_groups, "images": n_images, "pairs": n_pairs}
        spread = [m for m in entry["groups"].values() if len({split_of[u] for u in m if u in split_of}) > 1]
        leakage["any"] = {"groups": len(spread), "images": sum(sum(u in split_of for u in m) for m in spread),
                          "pairs": sum(v["pairs"] for v in leakage.values())}
        entry["leakage"] = leakage
    return truth


def _write_datasets(root: Path, frame: pd.DataFrame, files: dict[str, bytes], seed: int) -> None:
    """Write every dataset in the generic layout: ``dataset.yml``, ``metadata.csv``, ``images/``."""
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


def _write_ground_truth(root: Path, frame: pd.DataFrame, latents: dict[str, np.ndarray], truth: dict) -> None:
    """Write ``_synthetic/latent.parquet`` (one row per image with a latent) and ``ground_truth.json``."""
    gt_dir = root / _TRUTH_FOLDER
    gt_dir.mkdir(exist_ok=True)
    latent_uids = [u for u in frame["uid"] if u in latents]
    latent = pd.DataFrame(np.stack([latents[u] for u in latent_uids]).astype("float32"),
                          columns=[f"z_{a}" for a in LATENT_AXES])
    latent.insert(0, "uid", latent_uids)
    latent.to_parquet(gt_dir / _LATENT_FILE, index=False)
    (gt_dir / _TRUTH_FILE).write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")


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
            if child.is_dir() and ((child / "dataset.yml").exists() or child.name == _TRUTH_FOLDER):
                shutil.rmtree(child)
    root.mkdir(parents=True, exist_ok=True)
    d = _Draws(np.random.default_rng(seed), seed, image_size)
    _base_images(d, n_images)  # 1
    ring_uids = _planted_hole(d, n_images, hole_frac)  # 2
    resampled = _resample_year(d, n_images)  # 3
    id_duplicates = _identifier_rereleases(d, n_images)  # 4
    exact_pairs = _subset_release(d, n_images, ring_uids)  # 5
    protected = set(ring_uids) | {u for pair in id_duplicates for u in pair} | {p[0] for p in exact_pairs}
    planted_exact, planted_near = _planted_duplicates(d, protected, n_exact_pairs, n_near_pairs)  # 6, 7
    conflicts = _label_conflicts(d, planted_exact, planted_near, n_label_conflicts)
    off_topic = _off_topic(d, n_images, off_topic_frac)  # 8
    taken = {u for p in planted_exact for u in p} | {u for p in planted_near for u in (p["a"], p["b"])}
    bad = _bad_inputs(d, resampled, taken)  # 9
    groups = _lesions_and_patients(d, seed)  # 10 (its own generator: steps 1-9 are unchanged)

    frame = pd.DataFrame(d.rows)
    _write_datasets(root, frame, d.files, seed)
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
        "lesion_groups": groups,
        "bad_inputs": bad,
        "latent_axes": list(LATENT_AXES),
        "fst_true": {u: int(f) for u, f in zip(frame["uid"], frame["_fst_true"]) if u in d.latents},
    }
    _write_ground_truth(root, frame, d.latents, truth)
    return SyntheticAtlas(root=root, ground_truth=truth, n_images=len(d.files), n_rows=len(frame))


def read_ground_truth(atlas_root: str | Path) -> dict:
    """The planted ground truth stored in ``<atlas_root>/_synthetic/`` by :func:`generate_synthetic_atlas`."""
    return json.loads((Path(atlas_root) / _TRUTH_FOLDER / _TRUTH_FILE).read_text(encoding="utf-8"))


def latent_for_catalog(catalog: pd.DataFrame, atlas_root: str | Path) -> np.ndarray:
    """Latent vectors (float32, n x 8) aligned with the catalog rows that have pixels (path not NA).

    Rows whose image was generated off the latent (off-topic) carry their far-away placeholder.
    """
    latent = pd.read_parquet(Path(atlas_root) / _TRUTH_FOLDER / _LATENT_FILE)
    table = latent.set_index("uid")
    uids = catalog.loc[catalog["path"].notna(), "uid"].astype(str)
    missing = sorted(set(uids) - set(table.index))
    if missing:
        raise KeyError(f"{len(missing)} catalog images have no latent, e.g. {missing[:3]}")
    return table.loc[list(uids)].to_numpy(dtype="float32")
