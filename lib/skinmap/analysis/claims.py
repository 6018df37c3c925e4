"""Agreement between a published claim and the book's own estimate (the claims ledger).

The book holds itself against the paper's headline claims (``../shared/docs/claims.md``). A claim
is checked by comparing the published value with the book's estimate *and its interval*; a claim
whose value the data at hand cannot estimate is "cannot check", with the reason beside it. The
verdict words are fixed here once, so the preface, every chapter and the ledger appendix say the
same thing about the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

__all__ = [
    "VERDICTS",
    "Verdict",
    "verdict",
    "direction_verdict",
    "rank_verdict",
    "parse_published",
    "Evidence",
    "LEDGER_COLUMNS",
    "DEMOGRAPHIC_QUANTITIES",
    "CHECKS",
    "availability",
    "build_ledger",
]

Verdict = Literal["agrees", "disagrees", "inconclusive", "cannot check"]
#: Every verdict word, in the order the ledger sorts them.
VERDICTS: tuple[str, ...] = ("agrees", "disagrees", "inconclusive", "cannot check")


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(float(v)) for v in values)


def verdict(
    published: float | None,
    interval: tuple[float, float] | None,
    *,
    tolerance: float = 0.0,
) -> Verdict:
    """Does the book's interval for a quantity contain the published value?

    Parameters
    ----------
    published : float or None
        The paper's value (same units as the interval; a share as a fraction, not a percent).
    interval : (low, high) or None
        The book's 95% interval for the same quantity. ``None`` or a non-finite bound means the
        data at hand cannot estimate it.
    tolerance : float, default 0
        Half-width of a band around the interval that still counts as agreement (for a value the
        paper rounds, e.g. 0.0005 for a share printed with one decimal of a percent).

    Returns
    -------
    {"agrees", "disagrees", "cannot check"}
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if interval is None or not _finite(published, *interval):
        return "cannot check"
    low, high = sorted(float(v) for v in interval)
    return "agrees" if low - tolerance <= float(published) <= high + tolerance else "disagrees"


def direction_verdict(
    interval: tuple[float, float] | None,
    expected_sign: Literal[1, -1],
) -> Verdict:
    """A qualitative claim of direction ("B is larger than A") checked on the interval of B - A.

    Parameters
    ----------
    interval : (low, high) or None
        The book's 95% interval for the signed difference the claim is about.
    expected_sign : {1, -1}
        The sign the claim asserts.

    Returns
    -------
    {"agrees", "disagrees", "inconclusive", "cannot check"}
        "agrees" when the whole interval has the expected sign, "disagrees" when the whole
        interval has the opposite sign, "inconclusive" when it contains zero.
    """
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign must be 1 or -1, got {expected_sign!r}")
    if interval is None or not _finite(*interval):
        return "cannot check"
    low, high = sorted(float(v) * expected_sign for v in interval)
    if low > 0:
        return "agrees"
    if high < 0:
        return "disagrees"
    return "inconclusive"


def rank_verdict(
    names: Sequence[str],
    estimate: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    claimed: str,
) -> Verdict:
    """A ranking claim ("``claimed`` has the largest value") checked on intervals.

    Parameters
    ----------
    names : sequence of str, length m
    estimate, low, high : sequences of float, length m
        Each item's estimate and interval (``low == high == estimate`` when there is no interval).
    claimed : str
        The item the claim puts first.

    Returns
    -------
    {"agrees", "disagrees", "inconclusive", "cannot check"}
        "agrees" when the claimed item's interval lies above every other item's interval,
        "disagrees" when some other item's interval lies wholly above the claimed item's,
        "inconclusive" when intervals overlap, "cannot check" when the item is absent or alone.
    """
    names = [str(n) for n in names]
    if claimed not in names or len(names) < 2:
        return "cannot check"
    low = np.asarray(low, dtype=float)
    high = np.asarray(high, dtype=float)
    i = names.index(claimed)
    others = np.arange(len(names)) != i
    if not (np.isfinite(low[i]) and np.isfinite(high[i])):
        return "cannot check"
    if np.all(low[i] > high[others]):
        return "agrees"
    if np.any(low[others] > high[i]):
        return "disagrees"
    return "inconclusive"


_VALUE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=\s*([-+0-9.eE]+)\s*$")


def parse_published(text: str | None) -> dict[str, float]:
    """The published numbers of one claim: ``"imputed=0.030;labelled=0.028"`` -> a dict (order kept).

    An empty or missing field is an empty dict (a qualitative claim); a malformed item is a ValueError.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)) or not str(text).strip():
        return {}
    out: dict[str, float] = {}
    for item in str(text).split(";"):
        match = _VALUE.match(item)
        if not match:
            raise ValueError(f"published value {item!r} is not 'name=number'")
        out[match.group(1)] = float(match.group(2))
    return out


# --------------------------------------------------------------------------------- the ledger

#: Columns of the ledger table (``claims.ledger``), one row per claim id.
LEDGER_COLUMNS: tuple[str, ...] = (
    "id", "claim", "published", "where", "citation", "unit",
    "value", "ci_low", "ci_high", "verdict",
    "labelled_value", "labelled_ci_low", "labelled_ci_high", "labelled_verdict",
    "book", "reason",
)

#: The demographic quantities the ledger reads from the demographics chapter's share table
#: (``quantity`` column): claim id -> quantity name.
DEMOGRAPHIC_QUANTITIES: dict[str, str] = {
    "demo-fst56": "fst V-VI",
    "demo-fst23": "fst II-III",
    "demo-fst36-baseline": "fst III-VI",
    "demo-paed": "age 0-17",
    "demo-age3049": "age 30-49",
    "demo-female": "sex female",
}

#: Tolerance of a share the paper prints in percent with one decimal.
_PERCENT_ROUNDING = 0.0005


@dataclass(frozen=True)
class Evidence:
    """This book's side of one claim.

    ``value`` / ``ci_low`` / ``ci_high`` are in the claim's unit (shares as fractions);
    ``labelled_*`` is the second view of a demographic claim (labelled rows only); ``book`` says the
    book's value in words, ``reason`` why the claim cannot be checked or what the verdict rests on.
    """

    verdict: Verdict
    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    labelled_value: float = math.nan
    labelled_ci_low: float = math.nan
    labelled_ci_high: float = math.nan
    labelled_verdict: str = ""
    book: str = ""
    reason: str = ""


def _nan(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _fmt(value: float, unit: str) -> str:
    if not _finite(value):
        return "n/a"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "pp":
        return f"{value:+.1f} pp"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _with_interval(value: float, low: float, high: float, unit: str) -> str:
    text = _fmt(value, unit)
    if _finite(low, high) and not (low == high == value):
        text += f" (interval {_fmt(low, unit)} to {_fmt(high, unit)})"
    return text


def availability(catalog: pd.DataFrame) -> pd.DataFrame:
    """Rows and images per dataset of a catalog: ``dataset`` (index), ``n_rows``, ``n_images``.

    A dataset with rows but no images is *metadata-only*: image-based claims about it cannot be
    checked.
    """
    has_image = catalog["path"].notna() if "path" in catalog else pd.Series(True, index=catalog.index)
    return (pd.DataFrame({"dataset": catalog["dataset"].astype(str), "image": has_image.to_numpy()})
            .groupby("dataset")["image"].agg(n_rows="size", n_images="sum").astype(int))


def _absent(datasets: Sequence[str], avail: pd.DataFrame, needs: str) -> str | None:
    """The reason a claim about ``datasets`` cannot be checked here, or None."""
    absent = [d for d in datasets if d not in avail.index]
    if absent:
        return f"dataset absent: {', '.join(absent)} not in this corpus"
    if needs == "images":
        meta = [d for d in datasets if int(avail.loc[d, "n_images"]) == 0]
        if meta:
            return f"metadata-only: {', '.join(meta)} has no images here"
    return None


def _need(exports: Mapping[str, Any], key: str):
    value = exports.get(key)
    if value is None:
        raise _MissingExport(key)
    return value


class _MissingExport(LookupError):
    pass


def _split(text: Any) -> list[str]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    return [t.strip() for t in str(text).split(";") if t.strip()]


# ---- one check per claim id: (claim row with parsed ``values``, exports, availability) -> Evidence


def _check_share(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    shares = _need(exports, "demographics.claim_shares")
    quantity = DEMOGRAPHIC_QUANTITIES[claim["id"]]
    values = claim["values"]
    views = {}
    for view in ("imputed", "labelled"):
        row = shares[(shares["quantity"] == quantity) & (shares["view"] == view)]
        views[view] = ((_nan(row["share"].iat[0]), _nan(row["ci_low"].iat[0]), _nan(row["ci_high"].iat[0]),
                        int(row["n_rows"].iat[0])) if len(row) else (math.nan, math.nan, math.nan, 0))
    text = "; ".join(f"{name} view {_with_interval(*views[name][:3], 'share')}, n = {views[name][3]:,}"
                     for name in ("imputed", "labelled"))
    if claim["id"] == "demo-fst36-baseline":
        return Evidence("cannot check", *views["imputed"][:3], *views["labelled"][:3], "cannot check",
                        book=f"this atlas's own FST III-VI share: {text}",
                        reason="external baseline: a share of global dermatology visits, not a property of these data")
    primary = next(iter(values.values()))
    labelled = values.get("labelled", primary)
    v_imp = verdict(primary, views["imputed"][1:3], tolerance=_PERCENT_ROUNDING)
    v_lab = verdict(labelled, views["labelled"][1:3], tolerance=_PERCENT_ROUNDING)
    reason = "" if v_imp != "cannot check" else "no row has the field, labelled or imputed"
    return Evidence(v_imp, *views["imputed"][:3], *views["labelled"][:3], v_lab, book=text, reason=reason)


def _check_coverage(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    cov = _need(exports, "imputation.coverage")
    cov = cov[cov["scope"] == "all rows"]
    if cov.empty:
        return Evidence("cannot check", reason="no field was imputed")
    value = float(cov["expansion_pp"].mean())
    per_field = ", ".join(f"{r.field} {_fmt(r.expansion_pp, 'pp')}" for r in cov.itertuples())
    return Evidence(verdict(next(iter(claim["values"].values())), (value, value), tolerance=0.05),
                    value, value, value, book=f"mean {_fmt(value, 'pp')} over {len(cov)} fields ({per_field})",
                    reason="a count over this corpus (no sampling interval): it depends on which datasets, "
                           "carrying which fields, make up the corpus")


def _ratio_bounds(yearly: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if {"ratio_ci_low", "ratio_ci_high"} <= set(yearly.columns):
        return yearly["ratio_ci_low"].to_numpy(float), yearly["ratio_ci_high"].to_numpy(float)
    nu = yearly["nu"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return nu / yearly["ci_high"].to_numpy(float), nu / yearly["ci_low"].to_numpy(float)


#: Years of the paper's plateau claim (after 2017; 2024's total-body-photography spike excluded).
PLATEAU_YEARS: tuple[int, int] = (2018, 2023)


def _check_plateau(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    yearly = _need(exports, "novelty.yearly").copy()
    yearly = yearly[pd.to_numeric(yearly["ratio"], errors="coerce").notna()]
    low, high = _ratio_bounds(yearly)
    yearly = yearly.assign(r_low=low, r_high=high)
    years = yearly["year"].astype(int)
    plateau = yearly[(years >= PLATEAU_YEARS[0]) & (years <= PLATEAU_YEARS[1])]
    if plateau.empty:
        return Evidence("cannot check", reason=f"scale: no release year from {PLATEAU_YEARS[0]} to "
                                               f"{PLATEAU_YEARS[1]} after an earlier year in this corpus")
    value = float(plateau["ratio"].median())
    interval = (float(plateau["r_low"].median()), float(plateau["r_high"].median()))
    per_year = ", ".join(f"{int(r.year)} {r.ratio:.2f}" for r in plateau.itertuples())
    return Evidence(verdict(1.0, interval), value, *interval,
                    book=f"median ratio {_with_interval(value, *interval, 'ratio')} over "
                         f"{len(plateau)} years ({per_year})",
                    reason="interval: medians of the yearly ratio bounds (novelty over its null interval)")


def _check_icd_fst(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    table = exports.get("demographics.icd_coverage_by_fst")
    source = "imputed skin types"
    if table is not None and "view" in table:
        table = table[table["view"] == "imputed"]
    if table is None:
        table, source = _need(exports, "novelty.icd_coverage_by_fst"), "labelled skin types only"
    last = int(table["year"].max())
    final = table[table["year"] == last].set_index("fst_group")
    if not {"I-II", "V-VI"} <= set(final.index):
        return Evidence("cannot check", reason="no image with FST V-VI (labelled or imputed) has an ICD-10 code")
    gap = final["fraction"]["I-II"] - final["fraction"]["V-VI"]
    if "gap" in final.index and {"ci_low", "ci_high"} <= set(final.columns):
        interval = (float(final.loc["gap", "ci_low"]), float(final.loc["gap", "ci_high"]))
        gap = float(final.loc["gap", "fraction"])
    else:
        interval = (float(gap), float(gap))
    return Evidence(direction_verdict(interval, 1), float(gap), *interval,
                    book=f"by {last}, FST I-II images cover {_fmt(final['fraction']['I-II'], 'share')} of the "
                         f"corpus's ICD-10 codes, FST V-VI {_fmt(final['fraction']['V-VI'], 'share')}: gap "
                         f"{_with_interval(float(gap), *interval, 'share')} ({source})",
                    reason="checked as the sign of the final-year coverage gap (I-II minus V-VI)")


def _check_orphans(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    catalog = _need(exports, "data.catalog")
    orphans = _need(exports, "novelty.orphan_codes")
    codes = list(claim["values"])
    present = [c for c in codes if (catalog["icd10_code"].astype(str) == c).any()]
    top = orphans.sort_values("n_images", ascending=False).head(3)
    here = ", ".join(f"{r.code} {int(r.n_images):,} in {r.window}" for r in top.itertuples()) or "none"
    if not present:
        return Evidence("cannot check", book=f"largest orphan codes here: {here}",
                        reason=f"scale: none of {', '.join(codes)} occurs in this corpus")
    rows = orphans.set_index(orphans["code"].astype(str))
    ok = [c for c in present if c in rows.index and str(rows.loc[c, "window"]).startswith("2020")]
    return Evidence("agrees" if len(ok) == len(present) else "disagrees", book=f"largest orphan codes here: {here}",
                    reason=f"orphan in 2020 only here: {', '.join(ok) or 'none'} of {', '.join(present)}")


def _check_isic_cluster(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    fd = _need(exports, "similarity.frechet")
    named = set(claim["datasets"])
    names = set(fd["dataset_a"]) | set(fd["dataset_b"])
    family = sorted(named & names)
    if len(family) < 2 or not names - named:
        missing = _absent(sorted(named), avail, "images") or "fewer than two of them have images"
        return Evidence("cannot check", book=f"with images here: {', '.join(family) or 'none'}",
                        reason=f"{missing}; needs two of them and another dataset")
    a, b = fd["dataset_a"].isin(family), fd["dataset_b"].isin(family)
    within, across = fd[a & b], fd[a ^ b]
    lo = "ci_low" if "ci_low" in fd else "fd"
    hi = "ci_high" if "ci_high" in fd else "fd"
    value = float(within["fd"].mean() - across["fd"].mean())
    interval = (float(within[lo].mean() - across[hi].mean()), float(within[hi].mean() - across[lo].mean()))
    return Evidence(direction_verdict(interval, -1), value, *interval,
                    book=f"mean FD within {', '.join(family)} {within['fd'].mean():.3g} vs "
                         f"{across['fd'].mean():.3g} to the other datasets (difference "
                         f"{_with_interval(value, *interval, 'fd')})",
                    reason="interval: differences of mean interval bounds (conservative)")


def _check_unique(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    table = _need(exports, "similarity.uniqueness")
    claimed = [d for d in claim["datasets"] if d in set(table["dataset"])]
    if not claimed:
        return Evidence("cannot check", reason=_absent(claim["datasets"], avail, "images")
                        or "no claimed dataset has a uniqueness estimate")
    if "size_fair_uniqueness" in table:
        est, low, high = (table[c].to_numpy(float) for c in ("size_fair_uniqueness", "size_fair_ci_low",
                                                            "size_fair_ci_high"))
        kind = "size-fair uniqueness"
    else:
        est = low = high = table["uniqueness"].to_numpy(float)
        kind = "raw uniqueness (no interval)"
    names = table["dataset"].astype(str).tolist()
    verdicts = {d: rank_verdict(names, est, low, high, d) for d in claimed}
    order = np.argsort(-est)
    top = ", ".join(f"{names[i]} {est[i]:.3g}" for i in order[:3])
    i = names.index(claimed[0])
    missing = [d for d in claim["datasets"] if d not in claimed]
    word = ("agrees" if all(v == "agrees" for v in verdicts.values())
            else "disagrees" if any(v == "disagrees" for v in verdicts.values()) else "inconclusive")
    return Evidence(word, float(est[i]), float(low[i]), float(high[i]),
                    book=f"{kind}: most unique here {top}",
                    reason=("" if not missing else f"{', '.join(missing)} absent; ") +
                           f"checked on {', '.join(claimed)} against {len(names) - 1} other datasets")


def _check_retrieval(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    retrieval = _need(exports, "atlas.retrieval")
    name = claim["datasets"][0]
    wide = retrieval.pivot_table(index="eval_set", columns="setting", values="precision")
    analogue = "; ".join(f"{s} same dataset {r.get('same_dataset', math.nan):.2f} -> whole atlas "
                         f"{r.get('whole_atlas', math.nan):.2f}" for s, r in wide.iterrows())
    reason = _absent([name], avail, "images")
    if reason or name not in wide.index:
        return Evidence("cannot check", book=f"held-out analogue here (P@10): {analogue or 'none'}",
                        reason=reason or f"{name} is not a retrieval evaluation set in this run")
    rows = retrieval[(retrieval["eval_set"] == name) & (retrieval["setting"] == "whole_atlas")]
    value = float(rows["precision"].iat[0])
    lo, hi = next(((a, b) for a, b in (("precision_ci_low", "precision_ci_high"), ("ci_low", "ci_high"))
                   if a in rows and b in rows), (None, None))
    interval = (float(rows[lo].iat[0]), float(rows[hi].iat[0])) if lo else (value, value)
    return Evidence(verdict(claim["values"].get("whole_atlas"), interval, tolerance=0.005), value, *interval,
                    book=f"{name}: {analogue}")


_NAIL = re.compile(r"nail|onych|paronych", re.IGNORECASE)


def _check_nail(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    catalog = _need(exports, "data.catalog")
    with_image = catalog["path"].notna() if "path" in catalog else pd.Series(True, index=catalog.index)
    nail = catalog["diagnosis"].astype(str).str.contains(_NAIL) | catalog["icd10_code"].astype(str).str.match(
        r"^L6[0-2]")
    if not (nail & with_image).any():
        return Evidence("cannot check", reason="scale: no image of nail disease in this corpus")
    terms = exports.get("holes.terms")
    if terms is None or terms.empty:
        return Evidence("cannot check", reason="no hole was found or described in this run")
    dx = terms[terms["column"] == "diagnosis"]
    hit = dx[dx["term"].astype(str).str.contains(_NAIL)]
    top = ", ".join(f"{r.term} ({100 * r.share:.0f}%)" for r in dx.head(3).itertuples())
    return Evidence("agrees" if len(hit) else "disagrees", float(hit["share"].sum()) if len(hit) else 0.0,
                    book=f"top hole's boundary diagnoses: {top}",
                    reason="value: share of the top hole's boundary images with a nail diagnosis")


def _check_dataset(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    return Evidence("cannot check", reason=_absent(claim["datasets"], avail, claim["needs"])
                    or "the claim is about a dataset's published size, not measured here")


def _check_corrected_split(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    splits = exports.get("quality.corrected_splits")
    if splits is None:
        return Evidence("cannot check", reason=_absent(claim["datasets"], avail, "metadata")
                        or "metadata-only: no DermaMNIST split table in this run")
    wanted = {k: int(v) for k, v in claim["values"].items()}
    alias = {"valid": "val", "validation": "val"}
    sizes = {}
    for scheme in [c for c in splits.columns if c == "original" or c[:2] in ("a_", "b_", "c_")]:
        counts = splits[scheme].dropna().astype(str).map(lambda s: alias.get(s, s)).value_counts()
        sizes[scheme] = {k: int(counts.get(k, 0)) for k in wanted}
    match = [s for s, v in sizes.items() if v == wanted and s != "original"]
    text = "; ".join(f"{s} " + "/".join(f"{v[k]:,}" for k in wanted) for s, v in sizes.items())
    return Evidence("agrees" if match else "disagrees",
                    book=f"partition sizes ({'/'.join(wanted)}): {text}",
                    reason=f"reproduced exactly by {', '.join(match)}" if match
                    else "no correction rule reproduces the released sizes exactly")


def _check_known_pair(claim: Mapping, exports: Mapping[str, Any], avail: pd.DataFrame) -> Evidence:
    reason = _absent(claim["datasets"], avail, "images")
    if reason:
        return Evidence("cannot check", reason=reason)
    subset, parent = claim["datasets"][:2]
    known = _need(exports, "similarity.known_pairs")
    row = known[(known["subset"] == subset) & (known["parent"] == parent)]
    if row.empty or not bool(row["present"].iat[0]):
        return Evidence("cannot check", reason=f"{subset} / {parent} not compared in this run (min_images?)")
    fd = exports.get("similarity.frechet")
    value, interval = float(row["fd"].iat[0]), (math.nan, math.nan)
    if fd is not None and "ci_low" in fd:
        pair = fd[((fd["dataset_a"] == subset) & (fd["dataset_b"] == parent))
                  | ((fd["dataset_a"] == parent) & (fd["dataset_b"] == subset))]
        if len(pair):
            interval = (float(pair["ci_low"].iat[0]), float(pair["ci_high"].iat[0]))
    nearest = bool(row["parent_is_nearest"].iat[0])
    return Evidence("agrees" if nearest else "disagrees", value, *interval,
                    book=f"FD {_with_interval(value, *interval, 'fd')}, rank {int(row['rank'].iat[0])} of "
                         f"{int(row['n_pairs'].iat[0])} pairs; {parent} is "
                         f"{'' if nearest else 'not '}{subset}'s nearest dataset",
                    reason="checked as: the parent is the subset's nearest dataset by FD")


Check = Callable[[Mapping, Mapping[str, Any], pd.DataFrame], Evidence]

#: The check of each claim id (ids of ``lib/skinmap/data/tables/paper_claims.csv``).
CHECKS: dict[str, Check] = {
    **{key: _check_share for key in DEMOGRAPHIC_QUANTITIES},
    "impute-coverage": _check_coverage,
    "novelty-plateau": _check_plateau,
    "icd-fst": _check_icd_fst,
    "orphan-codes": _check_orphans,
    "fd-isic-cluster": _check_isic_cluster,
    "fd-subsets": _check_dataset,
    "unique-ph2": _check_unique,
    "retrieval-ddi": _check_retrieval,
    "retrieval-pad": _check_retrieval,
    "holes-nail": _check_nail,
    "derm1m-size": _check_dataset,
    "critique-dermamnist-c": _check_corrected_split,
    "isic2018-ham10000": _check_known_pair,
}


def build_ledger(claims: pd.DataFrame, exports: Mapping[str, Any], avail: pd.DataFrame) -> pd.DataFrame:
    """One ledger row per claim: the published value next to this book's value, interval and verdict.

    Parameters
    ----------
    claims : DataFrame
        The claims table (``paper_claims.csv``): ``id, claim, published_values, published_text, unit,
        datasets, needs, where, citation``.
    exports : mapping of export key -> DataFrame (or None when the run lacks it)
        The chapters' exports the checks read (keys as in ``skinmap.runs.EXPORTS``; ``holes.terms``
        is the top hole's term table).
    avail : DataFrame
        :func:`availability` of the run's catalog.

    Returns
    -------
    DataFrame with :data:`LEDGER_COLUMNS`, in the claims' order
        A claim without a check, whose needed export is missing, or whose export lacks a column the
        check reads, is "cannot check" with the reason.
    """
    rows = []
    for claim in claims.to_dict("records"):
        claim = {**claim, "values": parse_published(claim.get("published_values")),
                 "datasets": _split(claim.get("datasets")), "needs": str(claim.get("needs") or "any")}
        check = CHECKS.get(claim["id"])
        if check is None:
            evidence = Evidence("cannot check", reason="no check implemented for this claim")
        else:
            try:
                evidence = check(claim, exports, avail)
            except _MissingExport as exc:
                evidence = Evidence("cannot check", reason=f"export {exc.args[0]} not available in this run")
            except (KeyError, IndexError) as exc:
                # an export whose layout changed: said in the ledger, never a silent agreement
                evidence = Evidence("cannot check", reason=f"an export lacks what the check reads ({exc!r})")
        rows.append({"id": claim["id"], "claim": claim["claim"], "published": claim["published_text"],
                     "where": claim["where"], "citation": claim["citation"], "unit": claim["unit"],
                     **asdict(evidence)})
    return pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))
