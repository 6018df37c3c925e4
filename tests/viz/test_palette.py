"""The categorical palette is colour-blind safe, checked with an independent CIEDE2000.

The reference below is written from the published formula (Sharma, Wu & Dalal 2005, "The CIEDE2000
colour-difference formula: implementation notes, supplementary test data and mathematical
observations", Color Res. Appl. 30(1), eqs. 1-22) in plain scalar Python, and is itself checked on
the paper's 34 test pairs before it is used to judge the library's implementation and the palette.
"""

import math

import numpy as np
import pytest

from skinmap.viz import palette

# Sharma et al. (2005), Table 1: (L1, a1, b1, L2, a2, b2, dE00)
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]

# sRGB (D65) -> CIELAB reference values from Bruce Lindbloom's calculator (8-bit sRGB).
LINDBLOOM = [((106, 81, 67), (36.657, 8.250, 12.270)), ((182, 149, 130), (64.202, 9.433, 14.710)),
             ((103, 122, 154), (50.845, 1.004, -19.450)), ((95, 108, 69), (43.637, -12.265, 20.263)),
             ((194, 121, 48), (57.421, 22.476, 49.944)), ((122, 121, 120), (50.884, 0.149, 0.710))]


def reference_de2000(lab1, lab2):
    """CIEDE2000 written step by step from Sharma et al. (2005), scalar, kL = kC = kH = 1."""
    L1, a1, b1 = lab1
    L2, a2, b2 = lab2
    C1, C2 = math.sqrt(a1 * a1 + b1 * b1), math.sqrt(a2 * a2 + b2 * b2)  # eq. 2
    Cb = (C1 + C2) / 2  # eq. 3
    G = 0.5 * (1 - math.sqrt(Cb ** 7 / (Cb ** 7 + 25 ** 7)))  # eq. 4
    a1p, a2p = (1 + G) * a1, (1 + G) * a2  # eq. 5
    C1p, C2p = math.sqrt(a1p ** 2 + b1 ** 2), math.sqrt(a2p ** 2 + b2 ** 2)  # eq. 6

    def hue(b, ap):  # eq. 7
        if b == 0 and ap == 0:
            return 0.0
        h = math.degrees(math.atan2(b, ap))
        return h + 360 if h < 0 else h

    h1p, h2p = hue(b1, a1p), hue(b2, a2p)
    dLp = L2 - L1  # eq. 8
    dCp = C2p - C1p  # eq. 9
    if C1p * C2p == 0:  # eq. 10
        dhp = 0.0
    elif abs(h2p - h1p) <= 180:
        dhp = h2p - h1p
    elif h2p - h1p > 180:
        dhp = h2p - h1p - 360
    else:
        dhp = h2p - h1p + 360
    dHp = 2 * math.sqrt(C1p * C2p) * math.sin(math.radians(dhp / 2))  # eq. 11
    Lbp = (L1 + L2) / 2  # eq. 12
    Cbp = (C1p + C2p) / 2  # eq. 13
    if C1p * C2p == 0:  # eq. 14
        hbp = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        hbp = (h1p + h2p) / 2
    elif h1p + h2p < 360:
        hbp = (h1p + h2p + 360) / 2
    else:
        hbp = (h1p + h2p - 360) / 2
    T = (1 - 0.17 * math.cos(math.radians(hbp - 30)) + 0.24 * math.cos(math.radians(2 * hbp))
         + 0.32 * math.cos(math.radians(3 * hbp + 6)) - 0.20 * math.cos(math.radians(4 * hbp - 63)))  # eq. 15
    dtheta = 30 * math.exp(-(((hbp - 275) / 25) ** 2))  # eq. 16
    RC = 2 * math.sqrt(Cbp ** 7 / (Cbp ** 7 + 25 ** 7))  # eq. 17
    SL = 1 + 0.015 * (Lbp - 50) ** 2 / math.sqrt(20 + (Lbp - 50) ** 2)  # eq. 18
    SC = 1 + 0.045 * Cbp  # eq. 19
    SH = 1 + 0.015 * Cbp * T  # eq. 20
    RT = -math.sin(math.radians(2 * dtheta)) * RC  # eq. 21
    return math.sqrt((dLp / SL) ** 2 + (dCp / SC) ** 2 + (dHp / SH) ** 2 + RT * (dCp / SC) * (dHp / SH))  # eq. 22


def reference_lab(hex_colour):
    """sRGB hex -> CIELAB (D65), scalar, from the sRGB (IEC 61966-2-1) and CIE 1976 definitions."""
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    X = (0.4124564 * lin[0] + 0.3575761 * lin[1] + 0.1804375 * lin[2]) / 0.95047
    Y = 0.2126729 * lin[0] + 0.7151522 * lin[1] + 0.0721750 * lin[2]
    Z = (0.0193339 * lin[0] + 0.1191920 * lin[1] + 0.9503041 * lin[2]) / 1.08883
    f = [t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29 for t in (X, Y, Z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def reference_min_distance(hexes):
    labs = [reference_lab(h) for h in hexes]
    return min(reference_de2000(labs[i], labs[j]) for i in range(len(labs)) for j in range(i + 1, len(labs)))


@pytest.mark.parametrize("row", SHARMA)
def test_reference_implementation_matches_sharma_table(row):
    assert reference_de2000(row[:3], row[3:6]) == pytest.approx(row[6], abs=5e-5)
    assert reference_de2000(row[3:6], row[:3]) == pytest.approx(row[6], abs=5e-5)  # symmetric


def test_library_ciede2000_matches_sharma_table_vectorised():
    table = np.array(SHARMA)
    got = palette.ciede2000(table[:, :3], table[:, 3:6])
    np.testing.assert_allclose(got, table[:, 6], atol=5e-5)


def test_srgb_to_lab_matches_lindbloom():
    hexes = ["#%02x%02x%02x" % rgb for rgb, _ in LINDBLOOM]
    got = palette.srgb_to_lab(hexes)
    np.testing.assert_allclose(got, [lab for _, lab in LINDBLOOM], atol=0.05)
    for h, (_, lab) in zip(hexes, LINDBLOOM):
        np.testing.assert_allclose(reference_lab(h), lab, atol=0.05)


def test_palette_distinct_in_normal_vision_by_independent_computation():
    d = reference_min_distance(palette.CATEGORICAL)
    assert d >= palette.MIN_DELTA_E
    lib_d, _ = palette.min_pairwise_delta_e(palette.CATEGORICAL)
    assert lib_d == pytest.approx(d, abs=1e-6)


@pytest.mark.parametrize("kind", ["protanopia", "deuteranopia", "tritanopia"])
def test_palette_distinct_under_simulated_dichromacy(kind):
    simulated = palette.simulate_cvd(palette.CATEGORICAL, kind)
    hexes = ["#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgb) for rgb in simulated]
    assert reference_min_distance(hexes) >= palette.MIN_DELTA_E_CVD - 0.2  # 8-bit rounding of the simulation


def test_simulation_keeps_greys_and_collapses_a_red_green_pair():
    # a dichromat sees neutral greys unchanged (Machado rows sum to 1) ...
    greys = palette.simulate_cvd(["#000000", "#777777", "#ffffff"], "deuteranopia")
    np.testing.assert_allclose(greys, [[0, 0, 0], [0x77 / 255] * 3, [1, 1, 1]], atol=2e-3)
    # ... and a red/green pair that is far apart in normal vision becomes close
    pair = ["#d62728", "#2ca02c"]  # matplotlib's tab:red / tab:green
    assert reference_min_distance(pair) > 40
    assert palette.min_pairwise_delta_e(pair, "deuteranopia")[0] < 15


def test_the_old_seaborn_pinks_fail_the_floor():
    # the two pinks of seaborn's "colorblind" palette shown side by side in the UMAP panels
    assert reference_min_distance(["#cc78bc", "#fbafe4"]) < palette.MIN_DELTA_E


def test_category_styles_follow_the_rule_for_29_datasets():
    levels = [f"dataset-{i}" for i in range(29)] + ["other"]
    styles = palette.category_styles(levels)
    pairs = [(s.color, s.marker) for lev, s in styles.items() if lev != "other"]
    assert len(set(pairs)) == 29  # every dataset distinct by (colour, marker)
    n = len(palette.CATEGORICAL)
    for i in range(29):
        s = styles[f"dataset-{i}"]
        assert s.color == palette.CATEGORICAL[i % n]
        assert s.marker == palette.MARKERS[i // n]
        assert s.hatch == palette.HATCHES[i // n]
    assert styles["other"].color == palette.NEUTRAL
    # the first block uses colour alone (circles, no hatch)
    assert {styles[f"dataset-{i}"].marker for i in range(n)} == {"o"}
    with pytest.raises(ValueError, match="exceed"):
        palette.category_styles(range(len(palette.CATEGORICAL) * len(palette.MARKERS) + 1))


def test_neutral_grey_is_distinct_from_the_palette():
    colours = list(palette.CATEGORICAL) + [palette.NEUTRAL]
    assert reference_min_distance(colours) >= palette.MIN_DELTA_E
    for kind in ("protanopia", "deuteranopia", "tritanopia"):
        assert palette.min_pairwise_delta_e(colours, kind)[0] >= palette.MIN_DELTA_E_CVD
