"""Every figure the viz package draws passes the audit at demo size, and does what it promises.

The promises are checked against planted geometry: persistence labels of holes planted 0.1% of the
axis apart must not overlap; term bars are ranked by counts summed independently here; a 29-dataset
scatter gives every dataset a distinct (colour, marker).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from skinmap.viz import quality  # noqa: E402
from skinmap.viz.audit import MIN_FONT_PT, RENDERED_WIDTH_IN, audit_figure  # noqa: E402
from skinmap.viz.bars import clipped_bars, grouped_bars  # noqa: E402
from skinmap.viz.gallery import thumbnail_grid  # noqa: E402
from skinmap.viz.maps import category_maps  # noqa: E402
from skinmap.viz.palette import scatter_by_category  # noqa: E402
from skinmap.viz.style import set_style  # noqa: E402
from skinmap.viz.terms import term_bars, term_labels  # noqa: E402
from skinmap.viz.topology import persistence_diagram  # noqa: E402


@pytest.fixture(autouse=True)
def style():
    with matplotlib.rc_context():
        set_style(audit=False)
        yield
    plt.close("all")


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(64, 64), (48, 80), (80, 48)] * 4):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(*shape, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _boxes_overlap(a, b):
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0 and min(a.y1, b.y1) - max(a.y0, b.y0) > 0


def test_offtopic_gallery_captions_fit(images):
    # as the quality chapter calls it: 12 images, six columns, uid and z-score captions
    # uids as the demo atlas writes them (dataset / hex digest: wide glyphs, no break points); with a
    # 0.62 em character estimate the captions of the last two overlapped in the demo book
    uids = ["SynClinic-Atlas/9c824294310d0709fd50e60d6a5ee86f", "SynArchive-2021/ISYN_0500154",
            "SynClinic-Atlas/b2c408047581bc1ce3487c989e15bee8", "SynArchive-2021/ISYN_0500157",
            "SynArchive-2021/ISYN_0500153", "SynArchive-2021/ISYN_0500156",
            "SynClinic-Atlas/23db3b531f4f58ee251d7a30662e4e64", "SynClinic-Atlas/c31a9496d1848fa091ec6a9ca6ac9a0f"]
    captions = [f"{u}\nz={12.5 - i:.1f}" for i, u in enumerate(uids + [f"SynDerm-Vienna-{i:05d}" for i in range(4)])]
    fig = thumbnail_grid(images[:11] + [None], captions, ncols=6, title="highest off-topic scores")
    assert audit_figure(fig) == []
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    assert len(titles) == 12
    for i, a in enumerate(titles):  # no caption overlaps another caption or any image
        for b in titles[i + 1:]:
            assert not _boxes_overlap(a.get_window_extent(r), b.get_window_extent(r))
        for ax in fig.axes:
            if ax.images:
                assert not _boxes_overlap(a.get_window_extent(r), ax.images[0].get_window_extent(r))


def test_pair_gallery_and_side_by_side_pass(images):
    uids = [f"u{i}" for i in range(len(images))]
    pairs = pd.DataFrame({"image_a": uids[0::2], "image_b": uids[1::2], "similarity": np.linspace(0.99, 0.9, 6)})
    fig = quality.pair_gallery(pairs, dict(zip(uids, images)), {u: f"{u}\nnevus / FST 3" for u in uids},
                               title="accepted pairs (similarity >= 0.90 or ratio test): top and lowest")
    assert audit_figure(fig) == []
    rows = [[np.zeros((32, 32, 3), np.uint8)] * 2 for _ in range(4)]
    fig = quality.side_by_side(rows, ["resized to 224 px", "28 px, nearest to 224 px"],
                               ["melanocytic nevi", "melanoma", "benign keratosis-like lesions", "bcc"])
    assert audit_figure(fig) == []


def test_leakage_venn_passes():
    splits = ["train", "val", "test", "train", "val", "train"] * 20
    groups = [f"l{i // 2}" for i in range(len(splits))]
    assert audit_figure(quality.leakage_venn(splits, groups)) == []


def test_term_bars_rank_by_summed_counts():
    terms = pd.DataFrame({
        "column": ["diagnosis", "diagnosis", "diagnosis", "fst", "fst", "site", "diagnosis"],
        "term": ["nevus", "melanoma", "(missing)", "3", "5", "lower extremity", "acne"],
        "count": [40, 12, 99, 30, 2, 12, 1],
    })
    ranked = term_labels(terms)
    assert list(ranked["label"]) == ["nevus", "fst=3", "lower extremity", "melanoma", "fst=5", "acne"]
    assert list(ranked["count"]) == [40, 30, 12, 12, 2, 1]
    fig = term_bars(terms, top=4, title="What borders hole #1")
    assert audit_figure(fig) == []
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["nevus", "fst=3", "lower extremity", "melanoma"]
    assert [p.get_width() for p in ax.patches][:4] == [40, 30, 12, 12]
    assert {"40", "30", "12"} <= {t.get_text() for t in ax.texts}  # counts written at the bars
    assert term_bars(terms[terms.term == "(missing)"]) is None


def test_persistence_labels_do_not_collide():
    rng = np.random.default_rng(1)
    births = rng.uniform(0, 1, 200)
    deaths = births + rng.exponential(0.05, 200)
    # three planted holes almost on top of each other, one far away
    marked = [(0.50, 1.60, "#1"), (0.501, 1.601, "#2"), (0.502, 1.599, "#3"), (0.2, 0.9, "#4")]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    labels = persistence_diagram(ax, births, deaths, marked=marked, critical=0.4,
                                 critical_label="95% quantile of the null maximum")
    assert audit_figure(fig) == []
    r = fig.canvas.get_renderer()
    boxes = [matplotlib.text.Text.get_window_extent(a, r) for a in labels]  # the text, not its leader line
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _boxes_overlap(boxes[i], boxes[j]), (labels[i].get_text(), labels[j].get_text())
    assert [a.get_text() for a in labels] == ["#1", "#2", "#3", "#4"]


def test_clipped_bars_mark_each_clipped_value_horizontal_too():
    fig, ax = plt.subplots(figsize=(6, 3))
    values = [0.3, -76.0, 0.8, 5.0]
    clipped_bars(ax, np.arange(4), values, lo=-1, hi=1, orientation="horizontal",
                 ci_low=[0.2, -90, 0.7, 4], ci_high=[0.4, -60, 0.9, 6])
    assert audit_figure(fig) == []
    assert {"-76", "5"} <= {t.get_text() for t in ax.texts}
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.3, -1.0, 0.8, 1.0]


def test_scatter_of_29_datasets_is_distinct_and_passes():
    rng = np.random.default_rng(2)
    cats = np.repeat([f"Dataset {i:02d}" for i in range(29)], 20)
    fig, ax = plt.subplots(figsize=(7, 6.5))
    styles = scatter_by_category(ax, rng.normal(size=cats.size), rng.normal(size=cats.size), cats,
                                 legend_title="dataset")
    assert len({(s.color, s.marker) for s in styles.values()}) == 29
    assert audit_figure(fig) == []


def test_galleries_fit_the_column_so_captions_keep_their_size(images):
    # a six-column gallery used to be 11.4 in wide with 7 pt captions: 5 pt once shown in the column
    fig = thumbnail_grid(images, [f"c{i}" for i in range(len(images))], ncols=6)
    assert fig.get_figwidth() <= RENDERED_WIDTH_IN
    sizes = {ax.title.get_fontsize() for ax in fig.axes if ax.get_title()}
    assert min(sizes) >= MIN_FONT_PT


def test_category_maps_stack_panels_at_book_width():
    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n),
                          "dataset": rng.choice([f"Set {i}" for i in range(29)], n),
                          "modality": rng.choice(["dermoscopy", "clinical", None], n)})
    fig = category_maps(frame, ["dataset", "modality"])
    assert audit_figure(fig) == []
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels[-1] == "missing" and set(labels) == {"dermoscopy", "clinical", "missing"}
    assert len(fig.axes[0].get_legend().get_texts()) == 29


def test_grouped_bars_clip_and_annotate_like_the_probe_figure():
    table = pd.DataFrame({"eval_set": ["test", "held-out"] * 2, "model": ["linear"] * 2 + ["knn"] * 2,
                          "value": [0.5, -76.0, 0.4, 0.3]})
    table["ci_low"], table["ci_high"] = table["value"] - 0.1, table["value"] + 0.1
    fig, ax = plt.subplots(figsize=(6, 3.5))
    grouped_bars(ax, table, group="eval_set", hue="model", lo=-1, hi=1)
    assert audit_figure(fig) == []
    assert "-76" in {t.get_text() for t in ax.texts}
    assert min(p.get_height() for p in ax.patches) == -1.0


def test_long_uid_captions_keep_their_score_line(images):
    uid = "SynClinic-Atlas/9c824294310d0709fd50e60d6a5ee86f"
    fig = thumbnail_grid(images[:6], [f"{uid}\nz=5.2"] * 6, ncols=6)
    caption = fig.axes[0].get_title()
    assert caption.splitlines()[-1] == "z=5.2"
    assert caption.count("\n") <= 2 and "\u2026" in caption  # the uid is cut, not the score


def test_status_figure_says_why_and_passes_the_figure_rules():
    from skinmap.viz.style import set_style, status_figure

    set_style()
    why = "no FST probe could be scored (too few images with a skin type)"
    fig = status_figure(why)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["Not computed in this run", why]
    assert not fig.axes[0].axison  # no axes, ticks or frame around a message
    assert audit_figure(fig) == []  # readable at the book's rendered width, nothing overlapping
    plt.close(fig)
    with pytest.raises(ValueError):
        status_figure(" ")
