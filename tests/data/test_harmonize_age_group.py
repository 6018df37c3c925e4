"""Age groups: decades, an open top, and no group for values that are not ages."""

import pytest

from skinmap.data.harmonize import age_group


@pytest.mark.parametrize(
    ("age", "expected"),
    [(0, "0-9"), (9.9, "0-9"), (45, "40-49"), (89.5, "80-89"), (90, "90+"), (105, "90+"),
     (-17.0, None), (150, None), (None, None), (float("nan"), None)],
)
def test_age_group(age, expected):
    assert age_group(age) == expected
