"""Do the book's conclusions survive a change of encoder? Agreement statistics and their rules.

Every headline measurement of the book is made in one space, the fused embedding. The robustness
chapter repeats the measurements in other spaces (each ensemble member alone, and the fused space
retrained with other seeds) and asks, per conclusion, whether the other space tells the same story.
This module holds the comparison only: arrays and tables in, statistics and verdicts out. The
measurements themselves come from the chapters' own library calls (novelty, similarity, topology,
probes, retrieval).

One agreement statistic per conclusion, always *reference* (the fused space) against *other*:

==========================  ==============================================  ===================================
conclusion                  statistic                                       agrees when
==========================  ==============================================  ===================================
yearly novelty ratio        Spearman rho of the ratios over the years       ``rho >= min_spearman``
  (eq. 6)                   share of years whose ratio lies on the same     ``share >= min_sign_agreement``
                            side of 1 (sign agreement)
uniqueness ranking          Kendall tau of the datasets' uniqueness         ``tau >= min_kendall_correlation``
most unique dataset         same top-1 dataset (1 or 0)                     ``== 1``
closest pair                same pair of smallest FD (1 or 0)               ``== 1``
top hole (eqs. 14, 18)      Jaccard index of the reference top hole's       ``J >= min_hole_jaccard``
                            boundary rows with the best-matching hole
probe score per attribute   other − reference (F1 or R²)                    ``|d| <= max_score_difference``
retrieval P@k per dataset   other − reference                               ``|d| <= max_score_difference``
==========================  ==============================================  ===================================

A conclusion is *robust* when every fused-seed rerun agrees and at least ``min_share`` of the members
agree; otherwise it *depends on the encoder*; without a single computable statistic it *cannot be
checked*. The thresholds are knobs of :class:`RobustnessConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from skinmap.analysis.claims import direction_verdict
from skinmap.config import check_knobs, knob

__all__ = [
    "RobustnessConfig", "Conclusions", "ROBUST", "DEPENDS", "CANNOT_CHECK", "ENCODER_KINDS",
    "spearman_agreement", "sign_agreement", "kendall_agreement", "top_agreement", "closest_pair",
    "pair_agreement", "jaccard", "hole_agreement", "score_difference", "score_spread",
    "agreement_table", "conclusion_verdicts", "difference_interval", "fusion_gain",
]

ROBUST = "robust"
DEPENDS = "depends on the encoder"
CANNOT_CHECK = "cannot check"
#: Kinds of compared encoder: an ensemble member alone, or the fused space retrained with another seed.
ENCODER_KINDS = ("member", "seed")


@dataclass(frozen=True)
class RobustnessConfig:
    """The rules that call an encoder's result the same conclusion as the fused space's."""

    min_spearman: float = knob(0.7, ge=-1.0, le=1.0,
                               description="Spearman rho of the yearly novelty ratios at or above which they agree")
    min_sign_agreement: float = knob(
        0.8, ge=0.0, le=1.0, description="share of years on the same side of ratio 1 at or above which they agree")
    min_kendall_correlation: float = knob(0.6, ge=-1.0, le=1.0,
                                  description="Kendall tau of the uniqueness rankings at or above which they agree")
    min_hole_jaccard: float = knob(
        0.2, ge=0.0, le=1.0, description="boundary-row Jaccard of the matched top hole at or above which they agree")
    max_score_difference: float = knob(
        0.1, ge=0.0, le=10.0, description="largest |difference| of a probe score or P@k that still agrees")
    min_share: float = knob(0.75, gt=0.0, le=1.0,
                            description="share of the members that must agree for a conclusion to be robust")

    def __post_init__(self) -> None:
        check_knobs(self)


@dataclass(frozen=True)
class Conclusions:
    """The headline measurements of one encoder, in the form the agreement statistics compare.

    Attributes
    ----------
    novelty_ratio : Series
        Yearly novelty ratio ``nu_t / nu°_t`` (eq. 6), indexed by year (NaN: undefined).
    uniqueness : Series
        Uniqueness (mean FD to the other datasets), indexed by dataset.
    closest_pair : tuple of str or None
        The two datasets of smallest FD, sorted.
    hole_boundaries : list of list of int
        Boundary rows (eq. 18) of the top holes, most persistent first (rows index the shared row order).
    scores : Series
        Probe scores (``"probe <attribute>"``) and retrieval precision (``"retrieval <dataset>"``), by measure.
    """

    novelty_ratio: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    uniqueness: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    closest_pair: tuple[str, str] | None = None
    hole_boundaries: list[list[int]] = field(default_factory=list)
    scores: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))


# ------------------------------------------------------------------------------- statistics


def _common(reference: pd.Series, other: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values of both series on their shared index where both are finite."""
    a = pd.to_numeric(reference, errors="coerce").astype(float)
    b = pd.to_numeric(other, errors="coerce").astype(float)
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    both = both[np.isfinite(both).all(axis=1)]
    return both["a"].to_numpy(), both["b"].to_numpy()


def spearman_agreement(reference: pd.Series, other: pd.Series, *, min_points: int = 3) -> float:
    """Spearman rank correlation of two series on their shared finite entries.

    Parameters
    ----------
    reference, other : Series
        Values indexed by the same keys (e.g. years); only keys present and finite in both count.
    min_points : int, default 3
        Fewer shared entries give NaN (a rank correlation of two points says nothing).

    Returns
    -------
    float
        Rho in [-1, 1]; NaN with too few points or a constant series.
    """
    a, b = _common(reference, other)
    if a.size < min_points or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def sign_agreement(reference: pd.Series, other: pd.Series, *, center: float = 1.0) -> float:
    """Share of shared finite entries on the same side of ``center`` (a ratio above or below 1).

    An entry exactly at ``center`` is its own side. NaN when no entry is shared.
    """
    a, b = _common(reference, other)
    if a.size == 0:
        return float("nan")
    return float(np.mean(np.sign(a - center) == np.sign(b - center)))


def kendall_agreement(reference: pd.Series, other: pd.Series, *, min_points: int = 3) -> float:
    """Kendall tau-b of two scores on their shared finite entries (the rankings they induce).

    1 for identical orders, -1 for reversed; NaN with fewer than ``min_points`` shared entries.
    """
    a, b = _common(reference, other)
    if a.size < min_points or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def top_agreement(reference: pd.Series, other: pd.Series) -> float:
    """1.0 when both scores put the same key first (largest value), else 0.0; NaN when either is empty.

    Only keys present and finite in both count, so a dataset one encoder could not score cannot
    decide the top.
    """
    a = pd.to_numeric(reference, errors="coerce").astype(float)
    b = pd.to_numeric(other, errors="coerce").astype(float)
    shared = a.index.intersection(b.index)
    a, b = a[shared].dropna(), b[shared].dropna()
    shared = a.index.intersection(b.index)
    if len(shared) == 0:
        return float("nan")
    return float(a[shared].idxmax() == b[shared].idxmax())


def closest_pair(matrix: pd.DataFrame) -> tuple[str, str] | None:
    """The two distinct datasets with the smallest off-diagonal distance, sorted; None below 2 datasets.

    Parameters
    ----------
    matrix : DataFrame of shape (m, m)
        Symmetric distances (e.g. FD, eq. 8) with the dataset names as index and columns.
    """
    d = matrix.to_numpy(dtype=float).copy()
    if d.shape[0] < 2:
        return None
    np.fill_diagonal(d, np.inf)
    d[~np.isfinite(d)] = np.inf
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    if not np.isfinite(d[i, j]):
        return None
    return tuple(sorted((str(matrix.index[i]), str(matrix.columns[j]))))  # type: ignore[return-value]


def pair_agreement(reference: tuple[str, str] | None, other: tuple[str, str] | None) -> float:
    """1.0 when both are the same unordered pair, 0.0 when not, NaN when either is missing."""
    if reference is None or other is None:
        return float("nan")
    return float(set(reference) == set(other))


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """``|a & b| / |a | b|`` of two row sets (1 for two empty sets)."""
    sa, sb = {int(i) for i in a}, {int(i) for i in b}
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def hole_agreement(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]]) -> float:
    """Jaccard of the reference top hole's boundary rows with the best-matching hole of ``other``.

    Parameters
    ----------
    reference : sequence of sequences of int
        Boundary rows of the reference's top holes, most persistent first; only the first is matched.
    other : sequence of sequences of int
        Boundary rows of the other encoder's top holes (any order): the one overlapping most is its match.

    Returns
    -------
    float
        In [0, 1]; 0 when ``other`` found no hole; NaN when the reference has none.
    """
    if not reference or len(reference[0]) == 0:
        return float("nan")
    return max((jaccard(reference[0], b) for b in other), default=0.0)


def score_difference(reference: float, other: float) -> float:
    """``other - reference`` (NaN when either is missing)."""
    if reference is None or other is None or not (math.isfinite(reference) and math.isfinite(other)):
        return float("nan")
    return float(other) - float(reference)


def score_spread(scores: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Range of each measure across encoders.

    Parameters
    ----------
    scores : mapping of encoder name -> Series
        Each encoder's scores indexed by measure (NaN: not scored).

    Returns
    -------
    DataFrame
        Indexed by measure: ``low``, ``high``, ``range`` (high − low), ``lowest`` and ``highest``
        (the encoders at the ends), ``n_encoders`` that scored it.
    """
    table = pd.DataFrame({name: pd.to_numeric(s, errors="coerce") for name, s in scores.items()})
    rows = []
    for measure, row in table.iterrows():
        row = row.dropna()
        if row.empty:
            rows.append((measure, np.nan, np.nan, np.nan, None, None, 0))
            continue
        rows.append((measure, row.min(), row.max(), row.max() - row.min(), row.idxmin(), row.idxmax(), row.size))
    return pd.DataFrame(rows, columns=["measure", "low", "high", "range", "lowest", "highest", "n_encoders"]
                        ).set_index("measure")


# ------------------------------------------------------------------------------------ tables

#: (conclusion, statistic) rows of :func:`agreement_table` besides the per-measure score rows.
_FIXED_ROWS = (
    ("yearly novelty ratio", "Spearman rho"),
    ("novelty above or below the null", "sign agreement"),
    ("uniqueness ranking", "Kendall tau"),
    ("most unique dataset", "top-1 agreement"),
    ("closest pair of datasets", "same pair"),
    ("top hole", "boundary Jaccard"),
)


def _agrees(statistic: str, value: float, cfg: RobustnessConfig) -> float:
    """1.0 / 0.0 by the rule of ``statistic``; NaN when the value is NaN."""
    if not math.isfinite(value):
        return float("nan")
    rule = {
        "Spearman rho": value >= cfg.min_spearman,
        "sign agreement": value >= cfg.min_sign_agreement,
        "Kendall tau": value >= cfg.min_kendall_correlation,
        "top-1 agreement": value == 1.0,
        "same pair": value == 1.0,
        "boundary Jaccard": value >= cfg.min_hole_jaccard,
        "difference": abs(value) <= cfg.max_score_difference,
    }
    return float(rule[statistic])


def agreement_table(reference: Conclusions, others: Mapping[str, Conclusions],
                    config: RobustnessConfig | None = None) -> pd.DataFrame:
    """Every conclusion's agreement statistic for every other encoder, with its rule applied.

    Parameters
    ----------
    reference : Conclusions
        The fused space's measurements.
    others : mapping of encoder name -> Conclusions
        The same measurements in each other space.
    config : RobustnessConfig, optional
        The thresholds (defaults when omitted).

    Returns
    -------
    DataFrame
        One row per (conclusion, encoder): ``conclusion``, ``statistic``, ``encoder``, ``value``,
        ``agrees`` (1.0, 0.0, or NaN when the statistic cannot be computed). Score conclusions
        (``reference.scores``' measures) use ``statistic = "difference"`` (other − reference).
    """
    cfg = config or RobustnessConfig()
    rows = []
    for name, other in others.items():
        values = {
            "Spearman rho": spearman_agreement(reference.novelty_ratio, other.novelty_ratio),
            "sign agreement": sign_agreement(reference.novelty_ratio, other.novelty_ratio),
            "Kendall tau": kendall_agreement(reference.uniqueness, other.uniqueness),
            "top-1 agreement": top_agreement(reference.uniqueness, other.uniqueness),
            "same pair": pair_agreement(reference.closest_pair, other.closest_pair),
            "boundary Jaccard": hole_agreement(reference.hole_boundaries, other.hole_boundaries),
        }
        for conclusion, statistic in _FIXED_ROWS:
            value = values[statistic]
            rows.append((conclusion, statistic, name, value, _agrees(statistic, value, cfg)))
        for measure, ref_value in reference.scores.items():
            value = score_difference(float(ref_value), float(other.scores.get(measure, np.nan)))
            rows.append((str(measure), "difference", name, value, _agrees("difference", value, cfg)))
    return pd.DataFrame(rows, columns=["conclusion", "statistic", "encoder", "value", "agrees"])


def conclusion_verdicts(table: pd.DataFrame, kinds: Mapping[str, str],
                        config: RobustnessConfig | None = None) -> pd.DataFrame:
    """Per conclusion: how many encoders agree, and the verdict.

    Parameters
    ----------
    table : DataFrame
        :func:`agreement_table`'s output.
    kinds : mapping of encoder name -> {"member", "seed"}
        What each compared encoder is.
    config : RobustnessConfig, optional
        ``min_share`` decides the verdict.

    Returns
    -------
    DataFrame
        Indexed by conclusion (in the table's order): ``statistic``, ``n_members``,
        ``members_agree`` (count), ``member_share``, ``n_seeds``, ``seeds_agree`` (count),
        ``verdict``: "robust" when every computable seed agrees and at least ``min_share`` of the
        computable members agree, "depends on the encoder" otherwise, "cannot check" when no
        statistic could be computed.
    """
    cfg = config or RobustnessConfig()
    unknown = set(table["encoder"]) - set(kinds)
    if unknown:
        raise ValueError(f"no kind for encoder(s) {sorted(unknown)}")
    bad = set(kinds.values()) - set(ENCODER_KINDS)
    if bad:
        raise ValueError(f"encoder kinds must be one of {ENCODER_KINDS}, got {sorted(bad)}")
    kind = table["encoder"].map(kinds)
    rows = []
    for conclusion in dict.fromkeys(table["conclusion"]):
        sel = (table["conclusion"] == conclusion).to_numpy()
        agrees = table.loc[sel, "agrees"]
        members = agrees[(kind[sel] == "member").to_numpy()].dropna()
        seeds = agrees[(kind[sel] == "seed").to_numpy()].dropna()
        share = float(members.mean()) if len(members) else float("nan")
        if len(members) == 0 and len(seeds) == 0:
            verdict = CANNOT_CHECK
        else:
            seeds_ok = bool((seeds == 1.0).all())
            members_ok = len(members) == 0 or share >= cfg.min_share
            verdict = ROBUST if seeds_ok and members_ok else DEPENDS
        rows.append((conclusion, table.loc[sel, "statistic"].iloc[0], len(members), int(members.sum()), share,
                     len(seeds), int(seeds.sum()), verdict))
    return pd.DataFrame(rows, columns=["conclusion", "statistic", "n_members", "members_agree", "member_share",
                                       "n_seeds", "seeds_agree", "verdict"]).set_index("conclusion")


def difference_interval(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """A conservative interval for ``A − B`` from separate intervals of A and B.

    ``(a_low − b_high, a_high − b_low)``: when each interval covers its quantity with probability
    ``1 − alpha``, this one covers the difference with probability at least ``1 − 2 alpha``
    (Bonferroni), whatever the dependence between the two estimates.
    """
    return float(a[0]) - float(b[1]), float(a[1]) - float(b[0])


def fusion_gain(scores: pd.DataFrame, *, reference: str = "fused", members: Sequence[str]) -> pd.DataFrame:
    """The reference space's gain or loss against its best member, per measure.

    Parameters
    ----------
    scores : DataFrame
        Long table: ``measure``, ``encoder``, ``value``, ``ci_low``, ``ci_high`` (higher is better).
    reference : str, default "fused"
        The encoder compared with the members.
    members : sequence of str
        The encoders the reference is built from.

    Returns
    -------
    DataFrame
        Indexed by measure: ``reference`` value, ``best_member``, ``best_value``, ``gain``
        (reference − best member), its conservative interval ``gain_ci_low`` / ``gain_ci_high``
        (:func:`difference_interval`) and ``verdict`` (:func:`skinmap.analysis.claims.direction_verdict`
        with the expected sign +1: "agrees" = the reference is better than its best member).
    """
    rows = []
    for measure, sub in scores.groupby("measure", sort=False):
        sub = sub.set_index("encoder")
        if reference not in sub.index:
            continue
        mem = sub.loc[sub.index.intersection(list(members))].dropna(subset=["value"])
        ref = sub.loc[reference]
        if mem.empty or not math.isfinite(float(ref["value"])):
            rows.append((measure, float(ref["value"]), None, np.nan, np.nan, np.nan, np.nan, "cannot check"))
            continue
        best = mem["value"].astype(float).idxmax()
        low, high = difference_interval((ref["ci_low"], ref["ci_high"]),
                                        (mem.loc[best, "ci_low"], mem.loc[best, "ci_high"]))
        rows.append((measure, float(ref["value"]), best, float(mem.loc[best, "value"]),
                     float(ref["value"]) - float(mem.loc[best, "value"]), low, high,
                     direction_verdict((low, high), 1)))
    return pd.DataFrame(rows, columns=["measure", "reference", "best_member", "best_value", "gain", "gain_ci_low",
                                       "gain_ci_high", "verdict"]).set_index("measure")
