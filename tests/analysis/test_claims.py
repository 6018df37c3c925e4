"""The verdict words of the claims ledger, on hand-made intervals."""

import math

import pytest

from skinmap.analysis.claims import direction_verdict, verdict


@pytest.mark.parametrize(
    "published, interval, tolerance, expected",
    [
        (0.058, (0.05, 0.07), 0.0, "agrees"),
        (0.058, (0.06, 0.07), 0.0, "disagrees"),
        (0.058, (0.0585, 0.07), 0.001, "agrees"),
        (0.058, (0.07, 0.06), 0.0, "disagrees"),  # bounds given in either order
        (0.058, None, 0.0, "cannot check"),
        (0.058, (math.nan, 0.1), 0.0, "cannot check"),
        (None, (0.0, 0.1), 0.0, "cannot check"),
    ],
)
def test_verdict(published, interval, tolerance, expected):
    assert verdict(published, interval, tolerance=tolerance) == expected


def test_verdict_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        verdict(0.1, (0.0, 1.0), tolerance=-1)


@pytest.mark.parametrize(
    "interval, sign, expected",
    [((0.1, 0.3), 1, "agrees"), ((-0.3, -0.1), 1, "disagrees"), ((-0.1, 0.2), 1, "inconclusive"),
     ((-0.3, -0.1), -1, "agrees"), (None, 1, "cannot check")],
)
def test_direction_verdict(interval, sign, expected):
    assert direction_verdict(interval, sign) == expected
