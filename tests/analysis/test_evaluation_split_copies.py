"""Issue 15: copies verified on registered pixels join the evaluation split's groups before any training.

A planted copy (the source rotated by a right angle and cropped) whose frozen-vector cosine is below
``duplicate_threshold`` is missed by the cosine relation; the quality chapter's copy rule (registered
pixels on the nearest neighbours, :func:`accepted_pairs`) finds it, and the split then puts both images
in one group and one role. With the switch off the same seeded split separates them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from skinmap.analysis.evaluation_split import EvaluationSplitConfig, evaluation_split, role_pair_counts, straddling_pairs
from skinmap.analysis.quality.verification import CopyVerificationConfig, accepted_pairs
from skinmap.embed import copy_pairs as cp

N_SOURCES, SIDE = 24, 160


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A random textured RGB picture (smoothed noise at two scales), uint8 (SIDE, SIDE, 3)."""
    grey = gaussian_filter(rng.normal(size=(SIDE, SIDE)), 6) * 4 + gaussian_filter(rng.normal(size=(SIDE, SIDE)), 1.2)
    grey = (grey - grey.min()) / np.ptp(grey)
    tint = rng.uniform(0.6, 1.0, 3)
    return (255 * grey[..., None] * tint).astype(np.uint8)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Sources 0..N-1 and, as row N, a copy of source 0 rotated by 90 degrees and cropped to 88%;
    frozen vectors in which the copy is source 0's nearest neighbour at cosine 0.8 (< 0.95)."""
    folder = tmp_path_factory.mktemp("copies")
    rng = np.random.default_rng(7)
    pictures = [_texture(rng) for _ in range(N_SOURCES)]
    source = Image.fromarray(pictures[0]).rotate(90)
    cut = int(round(0.06 * SIDE))
    copy = source.crop((cut, cut, SIDE - cut, SIDE - cut)).resize((SIDE, SIDE), Image.BICUBIC)
    pictures.append(np.asarray(copy))
    paths = []
    for k, picture in enumerate(pictures):
        paths.append(str(folder / f"{k}.png"))
        Image.fromarray(picture).save(paths[-1])
    v = rng.normal(size=(N_SOURCES + 1, 32))
    v[:N_SOURCES] /= np.linalg.norm(v[:N_SOURCES], axis=1, keepdims=True)
    noise = v[N_SOURCES] - (v[N_SOURCES] @ v[0]) * v[0]
    v[N_SOURCES] = 0.8 * v[0] + 0.6 * noise / np.linalg.norm(noise)
    vectors = v.astype(np.float32)
    hashes = [f"h{k}" for k in range(len(paths))]
    return paths, vectors, hashes, folder


def _split(vectors, copy_pairs, seed, verify):
    n = len(vectors)
    config = EvaluationSplitConfig(test_fraction=0.4, duplicate_threshold=0.95, duplicate_n_neighbors=5,
                                   duplicate_mutual_top=2, duplicate_verify_pixels=verify, seed=seed)
    return evaluation_split(["A"] * n, None, None, vectors, config, copy_pairs=copy_pairs if verify else None)


def test_planted_copy_joins_one_group_and_role(planted, tmp_path):
    paths, vectors, hashes, _ = planted
    copy_row = len(paths) - 1
    assert float(vectors[0] @ vectors[copy_row]) < 0.95  # the cosine rule cannot see it
    config = CopyVerificationConfig()  # the profiles' verification knobs are the library defaults (n_candidates aside)
    _, scored, _ = cp.cached_registered_candidates(vectors, paths, hashes, config, tmp_path, progress=False)
    accepted = accepted_pairs(scored, 0.95, config)
    found = set(zip(accepted["i"], accepted["j"]))
    assert (0, copy_row) in found, scored.head()
    pairs = (accepted["i"].to_numpy(), accepted["j"].to_numpy())
    separated = []
    for seed in range(30):
        off = _split(vectors, pairs, seed, verify=False)
        on = _split(vectors, pairs, seed, verify=True)
        assert off["group"][0] != off["group"][copy_row]
        assert on["group"][0] == on["group"][copy_row]
        assert on["role"][0] == on["role"][copy_row]
        assert on.attrs["n_copy_pairs"] == len(accepted) and on.attrs["n_copy_pairs_new"] >= 1
        assert on.attrs["n_groups_without_copies"] == off["group"].nunique()
        separated.append(off["role"][0] != off["role"][copy_row])
    assert any(separated)  # without the pixel relation the seeded split does put them apart


def test_switch_on_needs_pairs():
    with pytest.raises(ValueError, match="copy_pairs"):
        _split(np.eye(3, dtype=np.float32), None, 0, verify=True)


def test_group_rule_names_the_copy_relation():
    on = EvaluationSplitConfig(duplicate_verify_pixels=True, duplicate_verify_threshold=0.9,
                               verification=CopyVerificationConfig(n_candidates=4))
    assert "registered-pixel similarity >= 0.9" in on.group_rule() and "4 nearest" in on.group_rule()
    assert "no pixel-verified copy relation" in EvaluationSplitConfig().group_rule()


def test_registration_is_cached_by_content(planted, tmp_path, monkeypatch):
    paths, vectors, hashes, _ = planted
    config = CopyVerificationConfig(n_candidates=2)
    first = cp.cached_registered_candidates(vectors, paths, hashes, config, tmp_path, progress=False)
    assert first[1].attrs["registration"]["cached"] is False

    def fail(*args, **kwargs):
        raise AssertionError("registered again")

    monkeypatch.setattr(cp, "registered_candidates", fail)
    again = cp.cached_registered_candidates(vectors, paths, hashes, config, tmp_path, progress=False)
    assert again[1].attrs["registration"]["cached"] is True
    pd.testing.assert_frame_equal(first[1].reset_index(drop=True), again[1].reset_index(drop=True), check_like=True)
    np.testing.assert_array_equal(first[2], again[2])
    # a different image content, vector or knob is another key (and would register again)
    with pytest.raises(AssertionError, match="registered again"):
        cp.cached_registered_candidates(vectors, paths, ["x", *hashes[1:]], config, tmp_path, progress=False)
    with pytest.raises(AssertionError, match="registered again"):
        cp.cached_registered_candidates(vectors, paths, hashes, CopyVerificationConfig(n_candidates=3), tmp_path,
                                        progress=False)
    # threads change the speed only
    cp.cached_registered_candidates(vectors, paths, hashes, CopyVerificationConfig(n_candidates=2, threads=2),
                                    tmp_path, progress=False)


def test_straddling_pairs_hand_made():
    uids = ["a", "b", "c", "d", "e"]
    roles = ["train", "test", "train", "holdout", "test"]
    pairs = pd.DataFrame({"image_a": ["a", "a", "b", "d", "c"], "image_b": ["b", "c", "e", "e", "d"],
                          "similarity": [0.9, 0.8, 0.7, 0.99, 0.96]})
    out = straddling_pairs(pairs, uids, roles)
    # a-b train/test, d-e holdout/test, c-d train/holdout straddle; a-c (train) and b-e (test) do not
    assert list(zip(out["image_a"], out["image_b"])) == [("a", "b"), ("d", "e"), ("c", "d")]
    assert list(out["role_a"]) == ["train", "holdout", "train"] and list(out["role_b"]) == ["test", "test", "holdout"]
    assert list(out["similarity"]) == [0.9, 0.99, 0.96]
    assert straddling_pairs(pairs.iloc[[1, 2]], uids, roles).empty
    with pytest.raises(ValueError, match="no role"):
        straddling_pairs(pd.DataFrame({"image_a": ["a"], "image_b": ["z"]}), uids, roles)


def test_role_pair_counts_hand_made():
    uids = ["a", "b", "c", "d", "e"]
    roles = ["train", "test", "train", "holdout", "test"]
    pairs = pd.DataFrame({"image_a": ["a", "a", "b", "d", "c"], "image_b": ["b", "c", "e", "e", "d"]})
    out = role_pair_counts(pairs, uids, roles)
    # hand count: a-b test&train, a-c train&train, b-e test&test, d-e holdout&test, c-d holdout&train
    expected = {"holdout & holdout": 0, "holdout & test": 1, "holdout & train": 1, "test & test": 1,
                "test & train": 1, "train & train": 1}
    assert out["pairs"].to_dict() == expected
    assert out.loc[out["straddles"], "pairs"].sum() == 3 == len(straddling_pairs(pairs, uids, roles))
    empty = role_pair_counts(pairs.iloc[:0], uids, roles)
    assert len(empty) == 6 and (empty["pairs"] == 0).all()
