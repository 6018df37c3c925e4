"""Agreement statistics of the robustness chapter, against closed forms and planted structure."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from skinmap.analysis import robustness as rb
from skinmap.analysis.similarity import dataset_similarity, uniqueness


def _series(values, keys=None):
    keys = list(keys) if keys is not None else [f"d{i}" for i in range(len(values))]
    return pd.Series(np.asarray(values, float), index=keys)


# ------------------------------------------------------------------------ rank agreement


def test_identical_rankings_give_tau_one_and_reversed_minus_one():
    scores = _series([5.0, 3.0, 9.0, 1.0, 7.0])
    assert rb.kendall_agreement(scores, scores) == pytest.approx(1.0)
    assert rb.kendall_agreement(scores, -scores) == pytest.approx(-1.0)
    # a monotone transform keeps the ranking
    assert rb.kendall_agreement(scores, np.exp(scores)) == pytest.approx(1.0)


def test_kendall_tau_of_one_swap_matches_the_pair_count():
    # 5 items, one adjacent swap: 9 concordant, 1 discordant pair of 10 -> tau = 0.8
    a = _series([1, 2, 3, 4, 5])
    b = _series([1, 2, 3, 5, 4])
    pairs = list(combinations(range(5), 2))
    concordant = sum(np.sign(a.iloc[i] - a.iloc[j]) == np.sign(b.iloc[i] - b.iloc[j]) for i, j in pairs)
    expected = (concordant - (len(pairs) - concordant)) / len(pairs)
    assert rb.kendall_agreement(a, b) == pytest.approx(expected) == pytest.approx(0.8)


def test_rank_agreement_uses_only_shared_finite_keys():
    a = _series([1, 2, 3, 4], keys="abcd")
    b = _series([10, 20, 30, np.nan, 99], keys="abcdz")
    assert rb.kendall_agreement(a, b) == pytest.approx(1.0)
    assert rb.spearman_agreement(a, b) == pytest.approx(1.0)
    assert np.isnan(rb.spearman_agreement(a.iloc[:2], b.iloc[:2]))  # two points say nothing


def test_spearman_of_reversed_years_is_minus_one_and_sign_agreement_counts_sides():
    years = [2016, 2017, 2018, 2019, 2020]
    ref = _series([1.4, 0.9, 1.1, 0.8, 2.0], years)
    assert rb.spearman_agreement(ref, ref * 3) == pytest.approx(1.0)
    assert rb.spearman_agreement(ref, 1 / ref) == pytest.approx(-1.0)
    other = _series([1.2, 1.3, 1.05, 0.7, 0.95], years)  # sides: + + + - -  vs ref + - + - +
    assert rb.sign_agreement(ref, other) == pytest.approx(3 / 5)


def test_top_and_pair_agreement():
    a = _series([0.1, 0.9, 0.5], keys=["PH2", "HAM", "ISIC"])
    assert rb.top_agreement(a, a) == 1.0
    assert rb.top_agreement(a, _series([0.9, 0.1, 0.5], keys=["PH2", "HAM", "ISIC"])) == 0.0
    assert rb.pair_agreement(("a", "b"), ("b", "a")) == 1.0
    assert rb.pair_agreement(("a", "b"), ("a", "c")) == 0.0
    assert np.isnan(rb.pair_agreement(None, ("a", "c")))


def test_closest_pair_matches_brute_force():
    rng = np.random.default_rng(3)
    names = list("abcdef")
    x = rng.normal(size=(6, 2))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    matrix = pd.DataFrame(d, index=names, columns=names)
    best = min(combinations(range(6), 2), key=lambda p: d[p])
    assert rb.closest_pair(matrix) == (names[best[0]], names[best[1]])
    assert rb.closest_pair(matrix.iloc[:1, :1]) is None


# -------------------------------------------------------------------------------- holes


def test_planted_holes_with_known_boundary_overlap():
    reference = [list(range(0, 10)), list(range(50, 60))]
    # the best match shares rows 5..9 of 0..14: 5 / 15; a disjoint hole must not win
    other = [list(range(200, 220)), list(range(5, 15))]
    assert rb.hole_agreement(reference, other) == pytest.approx(5 / 15)
    assert rb.hole_agreement(reference, [list(range(10))]) == 1.0
    assert rb.hole_agreement(reference, []) == 0.0
    assert np.isnan(rb.hole_agreement([], other))


# -------------------------------------------------------------------------------- scores


def test_score_spread_reports_range_and_ends():
    spread = rb.score_spread({
        "fused": _series([0.6, 0.3], ["probe fst", "retrieval X"]),
        "dino": _series([0.4, 0.5], ["probe fst", "retrieval X"]),
        "mae": _series([0.7, np.nan], ["probe fst", "retrieval X"]),
    })
    assert spread.loc["probe fst", "range"] == pytest.approx(0.3)
    assert spread.loc["probe fst", "lowest"] == "dino" and spread.loc["probe fst", "highest"] == "mae"
    assert spread.loc["retrieval X", "n_encoders"] == 2
    assert spread.loc["retrieval X", "range"] == pytest.approx(0.2)


def test_difference_interval_covers_at_least_one_minus_two_alpha():
    # two independent normal estimates with 95% intervals: the conservative interval of the
    # difference covers the true difference in at least 90% of replications (in fact more)
    rng = np.random.default_rng(0)
    z = norm.ppf(0.975)
    n = 4000
    a_hat, b_hat = rng.normal(1.0, 0.1, n), rng.normal(0.7, 0.2, n)
    covered = 0
    for a, b in zip(a_hat, b_hat):
        low, high = rb.difference_interval((a - z * 0.1, a + z * 0.1), (b - z * 0.2, b + z * 0.2))
        covered += low <= 0.3 <= high
    assert covered / n >= 0.90
    # and it is the sum of the half-widths, not narrower
    low, high = rb.difference_interval((0.5, 0.7), (0.1, 0.2))
    assert (low, high) == pytest.approx((0.3, 0.6))


def test_fusion_gain_against_the_best_member():
    scores = pd.DataFrame([
        ("probe fst", "fused", 0.80, 0.75, 0.85), ("probe fst", "dino", 0.60, 0.55, 0.65),
        ("probe fst", "mae", 0.70, 0.66, 0.74),
        ("retrieval X", "fused", 0.40, 0.30, 0.50), ("retrieval X", "dino", 0.45, 0.35, 0.55),
        ("retrieval X", "mae", 0.20, 0.10, 0.30),
    ], columns=["measure", "encoder", "value", "ci_low", "ci_high"])
    gain = rb.fusion_gain(scores, members=["dino", "mae"])
    assert gain.loc["probe fst", "best_member"] == "mae"
    assert gain.loc["probe fst", "gain"] == pytest.approx(0.10)
    assert gain.loc["probe fst", "verdict"] == "agrees"  # [0.75 - 0.74, 0.85 - 0.66] > 0
    assert gain.loc["retrieval X", "best_member"] == "dino"
    assert gain.loc["retrieval X", "gain"] == pytest.approx(-0.05)
    assert gain.loc["retrieval X", "verdict"] == "inconclusive"


# ------------------------------------------------------------------------- table and verdicts


def _conclusions(ratio, unique, pair, holes, scores):
    return rb.Conclusions(novelty_ratio=ratio, uniqueness=unique, closest_pair=pair, hole_boundaries=holes,
                          scores=scores)


def test_agreement_table_and_verdicts_on_planted_encoders():
    years = [2016, 2017, 2018, 2019]
    ref = _conclusions(_series([1.5, 0.9, 1.2, 0.8], years), _series([3, 2, 1], "abc"), ("a", "b"),
                       [list(range(10))], _series([0.8], ["probe fst"]))
    same = _conclusions(_series([1.6, 0.95, 1.3, 0.7], years), _series([30, 20, 10], "abc"), ("b", "a"),
                        [list(range(1, 11))], _series([0.75], ["probe fst"]))
    flipped = _conclusions(_series([0.8, 1.2, 0.9, 1.5], years), _series([1, 2, 3], "abc"), ("a", "c"),
                           [list(range(100, 110))], _series([0.4], ["probe fst"]))
    cfg = rb.RobustnessConfig()
    table = rb.agreement_table(ref, {"seed1": same, "m1": same, "m2": same, "m3": same, "m4": flipped}, cfg)
    t = table.set_index(["conclusion", "encoder"])
    assert t.loc[("uniqueness ranking", "m1"), "value"] == pytest.approx(1.0)
    assert t.loc[("uniqueness ranking", "m4"), "value"] == pytest.approx(-1.0)
    assert t.loc[("top hole", "m1"), "value"] == pytest.approx(9 / 11)
    assert t.loc[("probe fst", "m4"), "value"] == pytest.approx(-0.4)
    assert t.loc[("probe fst", "m1"), "agrees"] == 1.0 and t.loc[("probe fst", "m4"), "agrees"] == 0.0
    kinds = {"seed1": "seed", "m1": "member", "m2": "member", "m3": "member", "m4": "member"}
    verdicts = rb.conclusion_verdicts(table, kinds, cfg)
    # 3 of 4 members agree (share 0.75 = min_share) and the seed agrees: robust
    assert (verdicts["verdict"] == rb.ROBUST).all()
    assert verdicts.loc["uniqueness ranking", "members_agree"] == 3
    strict = rb.RobustnessConfig(min_share=1.0)
    assert (rb.conclusion_verdicts(table, kinds, strict)["verdict"] == rb.DEPENDS).all()
    # a seed that disagrees makes every conclusion depend on the encoder, whatever the members say
    table2 = rb.agreement_table(ref, {"seed1": flipped, "m1": same}, cfg)
    assert (rb.conclusion_verdicts(table2, {"seed1": "seed", "m1": "member"}, cfg)["verdict"] == rb.DEPENDS).all()


def test_a_conclusion_nobody_can_compute_cannot_be_checked():
    empty = rb.Conclusions()
    table = rb.agreement_table(empty, {"m1": empty})
    verdicts = rb.conclusion_verdicts(table, {"m1": "member"})
    assert (verdicts["verdict"] == rb.CANNOT_CHECK).all()
    with pytest.raises(ValueError, match="no kind"):
        rb.conclusion_verdicts(table, {})


def test_config_rejects_out_of_range_thresholds():
    with pytest.raises(ValueError, match="min_share"):
        rb.RobustnessConfig(min_share=0.0)
    with pytest.raises(ValueError, match="min_kendall_correlation"):
        rb.RobustnessConfig(min_kendall_correlation=1.5)


def test_uniqueness_conclusion_flips_when_an_encoder_is_scrambled():
    """Planted datasets of different spreads: a rotated, noisy copy of the space keeps the uniqueness
    ranking (robust); the same space with its rows scrambled across datasets loses it."""
    rng = np.random.default_rng(7)
    d, n = 8, 150
    names = [f"ds{i}" for i in range(6)]
    centres = rng.normal(size=(6, d)) * np.linspace(0.2, 2.0, 6)[:, None]  # ds5 the most unique
    z = np.vstack([c + 0.3 * rng.normal(size=(n, d)) for c in centres])
    labels = np.repeat(names, n)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))

    def unique_of(x, seed=0):
        groups = {k: x[labels == k] for k in names}
        sim = dataset_similarity(groups, n_bootstrap=0, covariance="empirical", progress=False, seed=seed)
        u = uniqueness(sim.matrix)
        return pd.Series(u["uniqueness"].to_numpy(), index=u["dataset"]), rb.closest_pair(sim.matrix)

    ref_u, ref_pair = unique_of(z)
    kinds = {"rotated": "member", "scrambled": "member"}
    others = {}
    for name, x in (("rotated", z @ rotation + 0.02 * rng.normal(size=z.shape)),
                    ("scrambled", z[rng.permutation(len(z))])):
        u, pair = unique_of(x)
        others[name] = rb.Conclusions(uniqueness=u, closest_pair=pair)
    reference = rb.Conclusions(uniqueness=ref_u, closest_pair=ref_pair)
    table = rb.agreement_table(reference, others).set_index(["conclusion", "encoder"])
    assert table.loc[("uniqueness ranking", "rotated"), "agrees"] == 1.0
    assert table.loc[("most unique dataset", "rotated"), "agrees"] == 1.0
    assert table.loc[("uniqueness ranking", "scrambled"), "agrees"] == 0.0
    one = rb.agreement_table(reference, {"rotated": others["rotated"]})
    assert rb.conclusion_verdicts(one, {"rotated": "member"}).loc["uniqueness ranking", "verdict"] == rb.ROBUST
    two = rb.agreement_table(reference, others)
    assert rb.conclusion_verdicts(two, kinds).loc["uniqueness ranking", "verdict"] == rb.DEPENDS
