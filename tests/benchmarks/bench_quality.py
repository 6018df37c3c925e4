"""Benchmark: our copy and off-topic detectors against the tools a curator would reach for.

``make bench-quality`` (after ``pip install -e '.[peers]'``). Never part of the test suite, never a
runtime dependency. Each tool runs as its documentation prescribes, on the same images:

* **ours**: candidates from the frozen EfficientNet-Lite0 member (each image's nearest neighbours)
  and from the rotation-invariant thumbnail descriptor, decided on registered pixels and accepted at
  the profiles' threshold (0.95) or by the ratio test
  (:func:`skinmap.analysis.quality.registration.registered_candidates`, :func:`~skinmap.analysis.
  quality.verification.accepted_pairs`);
* **critique rule**: embedding cosine similarity above 0.90 and above 0.95 (Abhishek et al. 2025,
  who used fastdup's embedding; here the same frozen member);
* **cleanvision** (``Imagelab.find_issues``: exact and near duplicates; dark, blurry, odd size,
  low information for the off-topic check);
* **SelfClean** (the dermatology group's self-supervised cleaner, PyPI ``selfclean``): reported as
  unavailable with the reason when it cannot run offline here (its default pretrained weights are
  downloaded at run time).

Image sets: (a) the demo atlas's planted copies and off-topic images (needs a built demo run,
``--run-dir``); (b) the held-out synthetic copy-detection set; (c) real images: copies of images
from ``../shared/data`` made by a seeded script with every transform below, among real
distractors, written to a temporary folder and deleted afterwards (never copied into the project);
the transforms that change an image's aspect ratio (:data:`NON_SQUARE_TRANSFORMS`: a tilt with a
square crop, a centred square crop, a squeeze to a square with a crop) are applied to non-square
sources only (PH2's 4:3 frames; the other shared sets are square).

Prints one ``BENCH`` line per tool and set, and a table of precision and per-transform recall;
``--out`` writes that table as CSV. The table is also written in long form (tool, licence, set,
transform, precision, recall, n) to ``runs/bench/<profile>/peer_comparison.csv`` (the profile's
``peer_comparison_csv``, outside every chapter's folder), which the quality chapter shows as "how
our detectors compare" from its next build on.
``--gate-check`` instead compares our detector with and without the rotation gate
(``verify_rotation_rank``) on the held-out and real sets: recall of each and the time ratio.

Licences (benchmark use only): cleanvision AGPL-3.0; SelfClean CC BY-NC 4.0 (its PyPI metadata, 0.0.39:
"Attribution-NonCommercial 4.0 International").
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[2]

#: Transforms of the real-image set (name -> function of a PIL image and a numpy Generator).
def _tilt(im: Image.Image, degrees: float) -> Image.Image:
    w, h = im.size
    rot = im.rotate(degrees, resample=Image.Resampling.BICUBIC)
    keep = min(w, h) / (abs(np.cos(np.deg2rad(degrees))) + abs(np.sin(np.deg2rad(degrees))))
    cx, cy = w / 2, h / 2
    return rot.crop((round(cx - keep / 2), round(cy - keep / 2), round(cx + keep / 2), round(cy + keep / 2)))


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(im: Image.Image, fraction: float, rng) -> Image.Image:
    w, h = im.size
    cw, ch = int(w * fraction), int(h * fraction)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return im.crop((x0, y0, x0 + cw, y0 + ch))


TRANSFORMS = {
    "crop": lambda im, rng: _crop(im, 0.88, rng),
    "flip_horizontal": lambda im, rng: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip_vertical": lambda im, rng: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "rot90": lambda im, rng: im.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda im, rng: im.transpose(Image.Transpose.ROTATE_180),
    "rot270": lambda im, rng: im.transpose(Image.Transpose.ROTATE_270),
    "tilt_crop": lambda im, rng: _tilt(im, float(rng.choice([-8, -6, 6, 8]))),
    "jpeg": lambda im, rng: _jpeg(im, 30),
    "colour": lambda im, rng: ImageEnhance.Color(ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.15))
                                                 .enhance(0.85)).enhance(1.3),
    "down_up": lambda im, rng: im.resize((max(8, im.width // 4), max(8, im.height // 4)), Image.Resampling.BILINEAR)
                                 .resize(im.size, Image.Resampling.BICUBIC),
    "combination": lambda im, rng: _jpeg(_crop(im, 0.9, rng).transpose(Image.Transpose.ROTATE_90), 50),
}


def _square_crop(im: Image.Image) -> Image.Image:
    w, h = im.size
    side = min(w, h)
    return im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))


#: Transforms that change a non-square image's aspect ratio (or resize it to another one), applied to
#: non-square sources only (in ../shared/data: PH2's 4:3 frames; the other sets are square). Their
#: sources are drawn after the images of :data:`TRANSFORMS`, so the copies and distractors of those
#: stay the same images.
NON_SQUARE_TRANSFORMS = {
    "tilt_crop_non_square": lambda im, rng: _tilt(im, float(rng.choice([-8, -6, 6, 8]))),
    "square_crop_non_square": lambda im, rng: _square_crop(im),
    "squeeze_crop_non_square": lambda im, rng: _crop(im.resize((min(im.size),) * 2, Image.Resampling.BICUBIC), 0.9, rng),
}


# ------------------------------------------------------------------------------------------ sets


def real_image_set(folder: Path, *, data_dir: Path, n_per_transform: int = 4, n_distractors: int = 200,
                   max_side: int = 512, seed: int = 0) -> tuple[list[Path], dict[tuple[int, int], str]]:
    """Copies of real images with every transform, among real distractors (seeded); then copies of
    non-square real images with :data:`NON_SQUARE_TRANSFORMS` (their sources drawn from the images
    not chosen yet, width / height off 1 by more than 5 %)."""
    files = sorted(p for p in data_dir.glob("images/*/**/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
    if not files:
        raise FileNotFoundError(f"no images under {data_dir / 'images'}")
    rng = np.random.default_rng(seed)
    n_sources = n_per_transform * len(TRANSFORMS)
    chosen = rng.choice(len(files), size=min(len(files), n_sources + n_distractors), replace=False)
    paths, truth = [], {}

    def load(p: Path) -> Image.Image:
        im = Image.open(p).convert("RGB")
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return im

    for k, idx in enumerate(chosen):
        out = folder / f"real_{k:04d}.jpg"
        load(files[idx]).save(out, quality=95)
        paths.append(out)
    for t, name in enumerate(TRANSFORMS):
        for r in range(n_per_transform):
            src = t * n_per_transform + r
            copy = TRANSFORMS[name](Image.open(paths[src]).convert("RGB"), rng)
            out = folder / f"copy_{name}_{r}.jpg"
            copy.save(out, quality=92)
            paths.append(out)
            truth[(src, len(paths) - 1)] = name
    unused = np.setdiff1d(rng.permutation(len(files)), chosen, assume_unique=True)
    sources = []
    for idx in unused[np.argsort(rng.random(len(unused)))]:  # a seeded order of the images left
        if len(sources) == n_per_transform * len(NON_SQUARE_TRANSFORMS):
            break
        with Image.open(files[idx]) as im:
            if abs(np.log(im.size[0] / im.size[1])) > np.log(1.05):
                sources.append(idx)
    for t, name in enumerate(NON_SQUARE_TRANSFORMS):
        for r, idx in enumerate(sources[t * n_per_transform:(t + 1) * n_per_transform]):
            out = folder / f"real_non_square_{t}_{r}.jpg"
            load(files[idx]).save(out, quality=95)
            paths.append(out)
            src = len(paths) - 1
            copy = NON_SQUARE_TRANSFORMS[name](Image.open(out).convert("RGB"), rng)
            out = folder / f"copy_{name}_{r}.jpg"
            copy.save(out, quality=92)
            paths.append(out)
            truth[(src, len(paths) - 1)] = name
    return paths, truth


def heldout_set(folder: Path) -> tuple[list[Path], dict[tuple[int, int], str]]:
    from skinmap.data.synthetic import copy_detection_set

    images, truth = copy_detection_set()
    paths = []
    for k, im in enumerate(images):
        paths.append(folder / f"heldout_{k:03d}.png")
        im.save(paths[-1])
    return paths, {tuple(sorted(p)): t for p, t in truth.items()}


def demo_set(run_dir: Path) -> tuple[list[Path], dict[tuple[int, int], str], list[int]]:
    from skinmap import runs

    catalog = runs.load_catalog(run_dir)
    truth_json = runs.load_ground_truth(run_dir)
    if truth_json is None:
        raise FileNotFoundError(f"{run_dir} is not a synthetic (demo) run: no planted ground truth")
    catalog = catalog[catalog["path"].notna()].reset_index(drop=True)
    row = {u: k for k, u in enumerate(catalog["uid"].astype(str))}
    truth = {}
    for a, b in truth_json.get("exact_duplicates", []):
        if a in row and b in row:
            truth[tuple(sorted((row[a], row[b])))] = "exact"
    for rec in truth_json.get("near_duplicates", []):
        if rec["a"] in row and rec["b"] in row:
            truth[tuple(sorted((row[rec["a"]], row[rec["b"]])))] = rec["transform"]
    off = [row[u] for u in truth_json.get("off_topic", []) if u in row]
    ranking = runs.read_export(run_dir, "quality.offtopic_ranking") if runs.export_path(
        run_dir, "quality.offtopic_ranking").is_file() else None
    ours_off = (None if ranking is None else
                {row[u] for u in ranking.loc[ranking["flagged"].astype(bool), "uid"].astype(str) if u in row})
    return [Path(p) for p in catalog["path"]], truth, (off, ours_off)


# ----------------------------------------------------------------------------------------- tools


def member_vectors(paths: list[Path], cache_dir: Path) -> np.ndarray:
    from skinmap.analysis.knn import l2_normalize
    from skinmap.embed.images import read_image
    from skinmap.embed.pipeline import build_member

    encoder = build_member({"name": "efficientnet_lite0", "kind": "efficientnet_lite0", "image_size": 224},
                           cache_dir, cache_dir)
    out = np.zeros((len(paths), encoder.dim), np.float32)
    for start in range(0, len(paths), 64):
        batch = [read_image(p, 224)[0].pixels for p in paths[start:start + 64]]
        out[start:start + len(batch)] = l2_normalize(encoder.encode_uint8(np.stack(batch)))
    return out


def ours(paths, vectors, **knobs) -> set[tuple[int, int]]:
    """Our detector at the profiles' defaults (``knobs`` override fields of the config);
    ``found.attrs``-style cost in the returned set's companion :data:`LAST_COST`."""
    from skinmap.analysis.quality import registration, verification

    config = verification.CopyVerificationConfig(**knobs)
    _, scored, _ = registration.registered_candidates(vectors, [str(p) for p in paths], config, progress=False)
    LAST_COST.clear()
    LAST_COST.update(scored.attrs.get("registration", {}))
    found = verification.accepted_pairs(scored, 0.95, config)
    return {tuple(sorted((int(i), int(j)))) for i, j in zip(found["i"], found["j"])}


#: Cost of the last :func:`ours` call (``seconds``, ``pairs``, ``rotation_searched``).
LAST_COST: dict = {}


def critique_rule(vectors, threshold: float) -> set[tuple[int, int]]:
    from skinmap.analysis.quality.duplicates import near_duplicate_pairs

    pairs = near_duplicate_pairs(vectors, threshold, n_neighbors=20)
    return {tuple(sorted((int(i), int(j)))) for i, j in zip(pairs["i"], pairs["j"])}


def cleanvision_tool(paths) -> tuple[set[tuple[int, int]], dict[str, set[int]]]:
    from cleanvision import Imagelab

    index = {str(p): k for k, p in enumerate(paths)}
    lab = Imagelab(filepaths=[str(p) for p in paths])
    lab.find_issues({"exact_duplicates": {}, "near_duplicates": {}, "dark": {}, "blurry": {}, "odd_size": {},
                     "low_information": {}, "odd_aspect_ratio": {}, "grayscale": {}}, verbose=False)
    pairs = set()
    for kind in ("exact_duplicates", "near_duplicates"):
        for group in lab.info.get(kind, {}).get("sets", []):
            rows = sorted(index[str(p)] for p in group)
            pairs |= set(itertools.combinations(rows, 2))
    flags = {}
    for col in lab.issues.columns:
        if col.startswith("is_") and col.endswith("_issue"):
            flagged = lab.issues.index[lab.issues[col]]
            flags[col[3:-6]] = {index[str(p)] for p in flagged}
    return pairs, flags


def selfclean_status() -> str:
    try:
        import selfclean  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - report any import failure as the reason
        return f"not installed or not importable ({type(exc).__name__}: {exc}); its pinned dependencies " \
               "(transformers 4.27) conflict with the project's MiniLM text encoder, so it is not in the 'peers' extra"
    return ("installed, but not run: SelfClean downloads its pretrained DINO weights at run time "
            "(torch.hub.download_url_to_file), which this machine cannot do; training its ViT from scratch "
            "for its default epochs is out of a CPU benchmark's budget")


# ---------------------------------------------------------------------------------------- scoring


#: Licence of each tool as its package metadata states it (benchmark use only for the peers).
LICENCES = {"ours": "the project's", "critique_cosine_0.90": "the project's (the critique's rule)",
            "critique_cosine_0.95": "the project's (the critique's rule)", "cleanvision": "AGPL-3.0",
            "selfclean": "CC BY-NC 4.0 (PyPI metadata of selfclean 0.0.39)"}


def peer_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison in long form, one row per tool, set and transform (``all`` = every planted
    pair): ``tool, licence, set, transform, precision, recall, n`` (``n`` planted pairs, or planted
    off-topic images; precision only on ``all``), plus a ``note`` for a tool that did not run."""
    rows = []
    for rec in table.to_dict("records"):
        tool, licence = rec["tool"], LICENCES.get(str(rec["tool"]).split(":")[0], "")
        if str(rec["set"]).endswith("off-topic"):
            licence = LICENCES["cleanvision"] if str(tool).startswith("cleanvision") else LICENCES["ours"]
        note = rec.get("note") if isinstance(rec.get("note"), str) else ""
        if note:
            rows.append({"tool": tool, "licence": licence, "set": rec["set"], "transform": "all",
                         "precision": np.nan, "recall": np.nan, "n": np.nan, "note": note})
            continue
        rows.append({"tool": tool, "licence": licence, "set": rec["set"], "transform": "all",
                     "precision": rec["precision"], "recall": rec["recall"], "n": rec["true_pairs"], "note": ""})
        for key, value in rec.items():
            if key.startswith("recall_") and pd.notna(value):
                t = key.removeprefix("recall_")
                rows.append({"tool": tool, "licence": licence, "set": rec["set"], "transform": t, "precision": np.nan,
                             "recall": value, "n": rec.get(f"n_{t}", np.nan), "note": ""})
    return pd.DataFrame(rows)


def score(found: set, truth: dict, n_images: int) -> dict:
    hits = found & set(truth)
    row = {"predicted": len(found), "true_pairs": len(truth), "found": len(hits),
           "precision": len(hits) / len(found) if found else float("nan"),
           "recall": len(hits) / len(truth) if truth else float("nan")}
    for t in sorted(set(truth.values())):
        total = sum(v == t for v in truth.values())
        row[f"recall_{t}"] = sum(truth[p] == t for p in hits) / total
        row[f"n_{t}"] = total
    return row


def run(sets: dict, out: Path | None) -> pd.DataFrame:
    rows = []
    status = selfclean_status()
    print(f"BENCH selfclean: {status}", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        for set_name, (paths, truth, off) in sets.items():
            start = time.perf_counter()
            vectors = member_vectors(paths, Path(cache))
            embed_s = time.perf_counter() - start
            tools = {}
            t0 = time.perf_counter()
            tools["ours"] = (ours(paths, vectors), time.perf_counter() - t0 + embed_s)
            for thr in (0.90, 0.95):
                t0 = time.perf_counter()
                tools[f"critique_cosine_{thr:.2f}"] = (critique_rule(vectors, thr), time.perf_counter() - t0 + embed_s)
            flags = {}
            try:
                t0 = time.perf_counter()
                pairs, flags = cleanvision_tool(paths)
                tools["cleanvision"] = (pairs, time.perf_counter() - t0)
            except ImportError as exc:
                print(f"BENCH cleanvision: not installed ({exc}); pip install -e '.[peers]'", flush=True)
            for tool, (found, seconds) in tools.items():
                row = {"set": set_name, "tool": tool, "images": len(paths), "seconds": round(seconds, 1),
                       **score(found, truth, len(paths))}
                rows.append(row)
                print(f"BENCH quality[{set_name}] {tool}: precision={row['precision']:.3f} recall={row['recall']:.3f} "
                      f"found={row['found']}/{row['true_pairs']} predicted={row['predicted']} seconds={seconds:.1f}",
                      flush=True)
            rows.append({"set": set_name, "tool": "selfclean", "images": len(paths), "note": status})
            off, ours_off = off if isinstance(off, tuple) else (off, None)
            if off:
                planted = set(off)
                candidates = dict(flags)
                if ours_off is not None:  # the quality chapter's k-NN similarity rule, from the run's export
                    candidates = {"ours (quality chapter)": ours_off, **{f"cleanvision:{k}": v for k, v in flags.items()}}
                else:
                    candidates = {f"cleanvision:{k}": v for k, v in flags.items()}
                for issue, flagged in candidates.items():
                    hit = len(flagged & planted)
                    rows.append({"set": f"{set_name} off-topic", "tool": issue, "images": len(paths),
                                 "predicted": len(flagged), "true_pairs": len(planted), "found": hit,
                                 "precision": hit / len(flagged) if flagged else float("nan"),
                                 "recall": hit / len(planted)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False), flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    return table


def gate_check(sets: dict) -> pd.DataFrame:
    """Our detector with the rotation gate at the descriptor's candidate rank (``rotation_rank`` 5)
    (the default; with each image's nearest embedding neighbour) against no gate (0: every candidate pair
    searched in every orientation): recall, precision and registration
    CPU seconds of the registration step per set (the machine is shared: CPU time, not wall clock);
    the ``BENCH`` line reports the speed-up as a ratio."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _harness

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for set_name, (paths, truth, _) in sets.items():
            vectors = member_vectors(paths, Path(cache))
            runs = {}
            for label, knobs in (("gated", {"rotation_rank": 5}), ("ungated", {"rotation_rank": 0})):
                found = ours(paths, vectors, **knobs)
                runs[label] = (LAST_COST.get("cpu_seconds", float("nan")), 0.0, found)  # CPU: robust to load
                rows.append({"set": set_name, "search": label, **dict(LAST_COST), **score(found, truth, len(paths))})
            _harness.report(f"quality_rotation_gate[{set_name}]", runs["gated"], runs["ungated"],
                            recall_gated=f"{rows[-2]['recall']:.3f}", recall_ungated=f"{rows[-1]['recall']:.3f}",
                            pairs=rows[-1].get("pairs"), rotation_searched=rows[-2].get("rotation_searched"))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False), flush=True)
    return table


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "demo", help="a built demo run (set a)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data", help="real images (set c)")
    parser.add_argument("--out", type=Path, default=None, help="write the table as CSV here")
    parser.add_argument("--peer-table", type=Path, default=None,
                        help="the quality chapter's 'how our detectors compare' table (default "
                             "runs/bench/<run-dir name>/peer_comparison.csv, the profile's peer_comparison_csv)")
    parser.add_argument("--n-per-transform", type=int, default=4)
    parser.add_argument("--n-distractors", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gate-check", action="store_true",
                        help="only compare our detector with and without the rotation gate (held-out and real sets)")
    parser.add_argument("--no-demo", action="store_true", help="leave out set (a)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {}
        if args.no_demo or args.gate_check:
            pass
        elif (args.run_dir / "data").is_dir():
            try:
                sets["demo"] = demo_set(args.run_dir)
            except FileNotFoundError as exc:
                print(f"BENCH quality[demo]: skipped ({exc})", flush=True)
        else:
            print(f"BENCH quality[demo]: no demo run at {args.run_dir} (run `make book` first)", flush=True)
        (tmp / "heldout").mkdir()
        paths, truth = heldout_set(tmp / "heldout")
        sets["heldout"] = (paths, truth, ([], None))
        if (args.data_dir / "images").is_dir():
            (tmp / "real").mkdir()
            paths, truth = real_image_set(tmp / "real", data_dir=args.data_dir, n_per_transform=args.n_per_transform,
                                          n_distractors=args.n_distractors, seed=args.seed)
            sets["real"] = (paths, truth, ([], None))
        else:
            print(f"BENCH quality[real]: no real images at {args.data_dir} (set c skipped)", flush=True)
        if args.gate_check:
            return gate_check(sets)
        table = run(sets, args.out)
        # the quality chapter's "how our detectors compare" table, outside every chapter's folder (a
        # chapter run replaces its folder); the chapter fingerprints it, so the next build shows it
        from skinmap.io import atomic_path

        peer_path = args.peer_table or ROOT / "runs" / "bench" / args.run_dir.name / "peer_comparison.csv"
        peer_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(peer_path) as tmp_path:
            peer_table(table).to_csv(tmp_path, index=False)
        print(f"BENCH quality: comparison table written to {peer_path}", flush=True)
        return table


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(0 if main() is not None else 1)
