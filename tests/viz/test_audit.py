"""The figure audit catches each planted violation and passes figures that follow the rules.

Each bad figure breaks exactly one rule, planted so that the expected verdict follows from
geometry, not from the audit's own output: a 6 pt font in a 15 in figure shown 8.3 in wide is
3.3 pt; a legend placed on top of a uniform cloud of 2,000 points must cover some; seaborn's two
"colorblind" pinks differ by CIEDE2000 14.6 (computed independently in ``test_palette.py``).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from skinmap.viz import audit  # noqa: E402
from skinmap.viz.bars import clipped_bars  # noqa: E402
from skinmap.viz.palette import CATEGORICAL, category_styles  # noqa: E402
from skinmap.viz.style import legend_outside, set_style  # noqa: E402


@pytest.fixture(autouse=True)
def style():
    with matplotlib.rc_context():
        set_style(audit=False)
        yield
    plt.close("all")


def _cloud(ax, n=2000, seed=0, **kw):
    xy = np.random.default_rng(seed).uniform(size=(n, 2))
    ax.scatter(xy[:, 0], xy[:, 1], s=4, **kw)


def good_figure():
    fig, axes = plt.subplots(1, 2, figsize=(7, 3))
    for i, colour in enumerate(CATEGORICAL[:3]):
        axes[0].scatter(np.arange(10) + i, np.arange(10), color=colour, label=f"set {i}")
    axes[0].set_title("left")
    legend_outside(axes[0], where="below")
    axes[1].bar(np.arange(3), [1, 2, 3], color=CATEGORICAL[:3])
    axes[1].set_title("right")
    return fig


def test_good_figure_passes():
    assert audit.audit_figure(good_figure()) == []


def test_rendered_scale_closed_form():
    fig, ax = plt.subplots(figsize=(16, 3))
    ax.set_axis_off()
    fig.text(0.0, 0.0, "x")
    fig.text(1.0, 1.0, "y", ha="right", va="top")  # the tight box spans the whole figure: 16 in
    scale, width = audit.rendered_scale(fig, rendered_width_in=8.0)
    assert width == pytest.approx(16.2, abs=0.05)  # + 2 x 0.1 in padding
    assert scale == pytest.approx(8.0 / 16.2, rel=0.01)
    small, ax = plt.subplots(figsize=(4, 3), dpi=96)
    small.text(0.0, 0.0, "x")
    small.text(1.0, 1.0, "y", ha="right", va="top")
    assert audit.rendered_scale(small)[0] == pytest.approx(1.0, abs=0.01)  # 96 dpi, narrower than the column


def test_tiny_font_in_wide_figure_is_caught():
    fig, ax = plt.subplots(figsize=(15, 4))
    ax.plot([0, 1], [0, 1])
    ax.set_title("a title", fontsize=6)
    ax.tick_params(labelsize=18)  # ticks large enough even at 15 in
    ax.xaxis.label.set_size(18)
    msgs = audit.audit_figure(fig)
    assert any("text too small" in m and "'a title'" in m for m in msgs), msgs
    fig.axes[0].set_title("a title", fontsize=18)
    assert audit.audit_figure(fig) == []


def test_default_sizes_pass_at_book_width_but_not_at_double_width():
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot([0, 1], [0, 1])
    ax.set(title="t", xlabel="x", ylabel="y")
    assert audit.audit_figure(fig) == []
    fig.set_size_inches(16, 3)
    assert any("text too small" in m for m in audit.audit_figure(fig))


def test_legend_over_data_is_caught_and_outside_passes():
    fig, ax = plt.subplots(figsize=(6, 4))
    _cloud(ax, label="cloud")
    ax.legend(loc="center")
    assert any("covers data" in m for m in audit.audit_figure(fig))
    legend_outside(ax)
    assert audit.audit_figure(fig) == []


def test_legend_over_bars_is_caught():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(np.arange(8), np.full(8, 10.0), label="bars")
    ax.legend(loc="center")
    assert any("covers data" in m for m in audit.audit_figure(fig))


def test_legend_cut_off_is_caught_when_not_saved_tight():
    fig, ax = plt.subplots(figsize=(6, 4), layout="none")  # no tight layout pulling the legend back in
    ax.plot([0, 1], [0, 1], label="line")
    ax.legend(loc="upper left", bbox_to_anchor=(1.5, 1.0))
    with matplotlib.rc_context({"savefig.bbox": "standard"}):
        assert any("outside the saved figure" in m for m in audit.audit_figure(fig))
    assert not any("outside the saved figure" in m for m in audit.audit_figure(fig))  # tight save keeps it


def test_near_identical_colours_are_caught():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([0], [0], color="#cc78bc", label="pink one")
    ax.scatter([1], [1], color="#fbafe4", label="pink two")
    ax.scatter([2], [2], color=CATEGORICAL[0], label="blue")
    legend_outside(ax)
    msgs = audit.audit_figure(fig)
    assert any("CIEDE2000" in m and "pink one" in m and "pink two" in m for m in msgs), msgs


def test_red_green_pair_is_caught_under_dichromacy():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [0, 1], color="#d62728", label="red")
    ax.plot([0, 1], [1, 0], color="#2ca02c", label="green")
    legend_outside(ax)
    assert any("deuteranopia" in m or "protanopia" in m for m in audit.audit_figure(fig))


def test_colour_reuse_is_allowed_only_with_another_marker():
    styles = category_styles([f"d{i}" for i in range(12)])
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (level, st) in enumerate(styles.items()):
        ax.scatter([i], [i], color=st.color, marker=st.marker, label=level)
    legend_outside(ax)
    assert audit.audit_figure(fig) == []
    fig2, ax2 = plt.subplots(figsize=(6, 4))
    for i, (level, st) in enumerate(styles.items()):
        ax2.scatter([i], [i], color=st.color, marker="o", label=level)  # colours repeat, shapes do not
    legend_outside(ax2)
    assert any("repeat a colour" in m for m in audit.audit_figure(fig2))


def test_overlapping_titles_are_caught():
    fig, axes = plt.subplots(1, 3, figsize=(7, 3), layout="none")
    for ax in axes:
        ax.set_title("a title far too long for a third of the figure width")
    assert any("overlapping text" in m for m in audit.audit_figure(fig))


def test_overlapping_annotations_are_caught():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([0.0, 0.5, 0.5005, 1.0], [0.0, 0.5, 0.5005, 1.0])  # two points 0.05% of the range apart
    ax.annotate("#1", (0.5, 0.5))
    ax.annotate("#2", (0.5005, 0.5005))
    assert any("overlapping text" in m and "#1" in m for m in audit.audit_figure(fig))


def test_clipped_bar_without_marker_is_caught_and_clipped_bars_pass():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([0, 1, 2], [0.5, -76.0, 0.2])
    ax.set_ylim(-1, 1)
    assert any("beyond the axis limits" in m for m in audit.audit_figure(fig))
    fig2, ax2 = plt.subplots(figsize=(6, 4))
    clipped_bars(ax2, [0, 1, 2], [0.5, -76.0, 0.2], lo=-1, hi=1)
    assert audit.audit_figure(fig2) == []
    texts = [t.get_text() for t in ax2.texts]
    assert "-76" in texts  # the true value is written at the clipped bar
    assert ax2.get_ylim()[0] < -1 < ax2.get_ylim()[1]


def test_squashed_panel_is_caught():
    fig, axes = plt.subplots(2, 1, figsize=(6, 4), layout="none")
    for ax, name in zip(axes, ["top", "bottom"]):
        ax.plot([0, 1], [0, 1])
        ax.set_title(name)
    fig.subplots_adjust(bottom=0.1, top=0.9, hspace=30)  # what a tight layout does to make room for a long legend
    msgs = audit.audit_figure(fig)
    assert sum("squashed" in m for m in msgs) == 2, msgs
    fig.subplots_adjust(hspace=0.3)
    assert not any("squashed" in m for m in audit.audit_figure(fig))


def test_legend_over_the_next_panels_label_is_caught():
    # as in the holes chapter: a wide legend of the left panel reaches the right panel's y label
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 4), layout="none")
    a1.plot([0, 1], [0, 0.02], label="95% quantile of the null maximum (99 rounds), a long entry")
    a1.legend(loc="upper left", bbox_to_anchor=(0.05, 1.0))
    a2.set_ylabel("persistence (death - birth)")
    a2.bar([1, 2], [1, 2])
    msgs = audit.audit_figure(fig)
    assert any("overlaps text" in m for m in msgs), msgs
    a1.get_legend().remove()
    assert not any("overlaps text" in m for m in audit.audit_figure(fig))
