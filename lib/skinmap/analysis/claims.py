"""Agreement between a published claim and the book's own estimate (the claims ledger).

The book holds itself against the paper's headline claims (``../shared/docs/claims.md``). A claim
is checked by comparing the published value with the book's estimate *and its interval*; a claim
whose value the data at hand cannot estimate is "cannot check", with the reason beside it. The
verdict words are fixed here once, so the preface, every chapter and the ledger appendix say the
same thing about the same numbers.
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["VERDICTS", "Verdict", "verdict", "direction_verdict"]

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
