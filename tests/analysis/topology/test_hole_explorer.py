"""The teaching hole explorer: offline HTML, linked diagram/map/gallery, a filtration slider that
shows exactly the pairs within r, and sanity shapes whose known answer the search recovers."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.analysis.topology.shapes import DETECTABLE, SHAPES, sanity_shape
from skinmap.viz.hole_explorer import (
    build_hole_explorer,
    explorer_scene,
    filtration_edges,
    hole_explorer_html,
    sanity_scenes,
    standalone_page,
)


def _points(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n), "y": rng.normal(size=n), "uid": [f"d/{i}" for i in range(n)],
        "dataset": rng.choice(["a", "b"], n), "fst": pd.array(rng.choice([1, 2, pd.NA], n), dtype="Int64"),
        "modality": "clinical", "diagnosis": "nevus",
    })


def _holes():
    return [{"rank": 1, "birth": 0.1, "death": 0.6, "persistence": 0.5, "cycle": [1, 2, 3], "boundary": [1, 2, 3, 9]},
            {"rank": 2, "birth": 0.2, "death": 0.4, "persistence": 0.2, "cycle": [5, 6, 7, 8], "boundary": [5, 30]}]


def _distance(m, seed=1):
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 1, (m, m))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    return d


def _payload(html):
    return json.loads(re.search(r"var DATA = (\{.*?\}), ROOT", html, flags=re.S).group(1))


def test_filtration_edges_are_exactly_the_pairs_within_the_radius():
    d = _distance(12)
    edges, radius = filtration_edges(d, max_radius=0.5, max_edges=10_000)
    brute = {(i, j) for i in range(12) for j in range(i + 1, 12) if d[i, j] <= 0.5}
    assert {(int(i), int(j)) for i, j, _ in edges} == brute and radius == 0.5
    assert np.all(np.diff(edges[:, 2]) >= 0)
    # capped: every pair within the lowered radius is still listed, and none beyond it
    capped, r = filtration_edges(d, max_radius=0.5, max_edges=7)
    assert len(capped) <= 7 and r < 0.5
    assert {(int(i), int(j)) for i, j, _ in capped} == {(i, j) for i, j in brute if d[i, j] <= r}


def test_scene_remaps_rows_and_keeps_hole_and_filtration_rows():
    pts = _points(200)
    holes = [{"rank": 1, "birth": 0.0, "death": 1.0, "persistence": 1.0, "cycle": [0, 150, 199],
              "boundary": [0, 1, 2, 150, 199]}]
    frows = np.array([10, 20, 150, 199])
    d = _distance(4)
    terms = {1: pd.DataFrame({"column": ["diagnosis", "diagnosis", "site"], "term": ["nail", "(missing)", "hand"],
                              "count": [3, 9, 5]})}
    scene = explorer_scene("Atlas", pts, holes, births=[0.0, 0.2], deaths=[1.0, 0.3], filtration_rows=frows,
                           filtration_distance=d, terms=terms, max_points=30)
    uids = scene.points["uid"].tolist()
    assert len(uids) == 30
    assert [uids[p] for p in scene.holes[0]["cycle"]] == ["d/0", "d/150", "d/199"]
    assert [uids[p] for p in scene.holes[0]["boundary"]] == ["d/0", "d/1", "d/2", "d/150", "d/199"]
    assert [uids[p] for p in scene.landmarks] == ["d/10", "d/20", "d/150", "d/199"]
    assert scene.holes[0]["terms"] == [["diagnosis", "nail", 3], ["site", "hand", 5]][::-1]  # by count, missing dropped
    assert len(scene.edges) == sum(d[i, j] <= scene.max_radius for i in range(4) for j in range(i + 1, 4))


def test_fragment_is_offline_and_carries_every_scene():
    scene = explorer_scene("Atlas", _points(), _holes(), births=[0.1, 0.2, 0.3], deaths=[0.6, 0.4, 0.35])
    other = explorer_scene("circle", _points(10, seed=3), [], births=[], deaths=[])
    html = hole_explorer_html([scene, other], include_plotlyjs=True)
    assert re.search(r'<script[^>]*src="https?://', html) is None  # plotly.js inlined, no CDN
    data = _payload(html)
    assert [s["name"] for s in data["scenes"]] == ["Atlas", "circle"]
    atlas = data["scenes"][0]
    assert atlas["thumbs"] is None and len(atlas["x"]) == 40
    assert sorted(atlas["meta"]["fst"]) == sorted(["NA" if pd.isna(v) else str(v) for v in _points()["fst"]])
    for control in ("scene", "hole", "color", "fcol", "fval", "radius", "download", "diagram", "barcode", "gallery"):
        assert f'id="skinmap-hole-explorer-{control}"' in html
    assert "2-D projection" in html
    assert standalone_page(html).startswith("<!DOCTYPE html>")


def test_build_embeds_thumbnails_only_when_asked(tmp_path):
    pts = _points(50)
    paths = []
    for i in range(50):
        p = tmp_path / f"{i}.png"
        if i < 3:
            Image.new("RGB", (20, 10), (i * 50, 0, 0)).save(p)
        paths.append(str(p) if i < 3 else None)
    pts["path"] = paths
    pts["source_file"] = [f"/data/root/{i}.png" for i in range(50)]
    data = _payload(build_hole_explorer(pts, _holes(), thumbnails=True, thumbnail_px=16, include_plotlyjs=False))
    thumbs = dict(zip(data["scenes"][0]["uid"], data["scenes"][0]["thumbs"]))
    assert thumbs["d/0"].startswith("data:image/jpeg;base64,") and thumbs["d/30"] is None
    assert "path" not in data["scenes"][0]["meta"] and "source_file" not in data["scenes"][0]["meta"]
    assert "/data/root" not in build_hole_explorer(pts, _holes(), include_plotlyjs=False)  # no machine paths
    assert _payload(build_hole_explorer(pts, _holes(), include_plotlyjs=False))["scenes"][0]["thumbs"] is None


@pytest.mark.parametrize("name", list(SHAPES))
def test_sanity_shapes_known_answer_is_recovered(name):
    from skinmap.analysis.topology.search import HoleSearchConfig, search_holes

    shape = sanity_shape(name, 240, seed=0)
    search = search_holes(shape.points, HoleSearchConfig(n_landmarks=240, landmark_method="farthest",
                                                         resistance_method="dense", max_rips_points=240,
                                                         graph_n_neighbors=15))
    pers = np.sort(search.diagram.persistence)[::-1]
    k = DETECTABLE[name]
    assert k <= SHAPES[name]
    # the known holes stand out: the k-th bar is clearly longer than the (k+1)-th
    assert pers[k - 1] > 2 * (pers[k] if pers.size > k else 0.0)


@pytest.mark.slow
def test_sanity_scenes_state_their_known_answer():
    from skinmap.analysis.topology.search import HoleSearchConfig

    scenes = sanity_scenes(HoleSearchConfig(n_landmarks=240))
    assert [s.name for s in scenes] == ["circle", "two circles", "torus"]
    for scene, n in zip(scenes, SHAPES.values()):
        assert scene.note.startswith(f"Known answer: {n} hole")
        assert len(scene.edges) > 0


@pytest.mark.browser
def test_diagram_click_gallery_and_slider_in_headless_chromium(tmp_path, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    pts = _points(60)
    frows = np.arange(0, 60, 3)
    d = _distance(frows.size, seed=4)
    holes = _holes()
    births, deaths = [0.1, 0.2, 0.05, 0.07], [0.6, 0.4, 0.1, 0.09]
    scene = explorer_scene("Atlas", pts, holes, births=births, deaths=deaths, filtration_rows=frows,
                           filtration_distance=d)
    page = tmp_path / "explorer.html"
    page.write_text(standalone_page(hole_explorer_html([scene])), encoding="utf-8")
    drv = chromium
    drv.get(page.as_uri())
    wait = WebDriverWait(drv, 60, poll_frequency=0.2)
    gd = "document.getElementById('skinmap-hole-explorer-plot')"
    wait.until(lambda x: x.execute_script(f"return {gd} && {gd}.getAttribute('data-ready')") == "0")

    # click the diagram point of hole #2: its loop is drawn and the gallery lists exactly its rows
    dot = drv.find_element(By.CSS_SELECTOR, "#skinmap-hole-explorer-diagram circle[data-hole='1']")
    dot.click()
    wait.until(lambda x: x.execute_script(f"return {gd}.getAttribute('data-hole')") == "2")
    loop_visible = drv.execute_script(f"return {gd}.data[3].visible && {gd}.data[3].x.length")
    assert loop_visible == len(holes[1]["cycle"]) + 1
    cards = drv.execute_script(
        "return Array.from(document.querySelectorAll('#skinmap-hole-explorer-gallery .hx-card'))"
        ".map(c => [c.dataset.kind, c.dataset.uid])")
    expected = [["loop", f"d/{r}"] for r in holes[1]["cycle"]] + [
        ["boundary", f"d/{r}"] for r in holes[1]["boundary"] if r not in holes[1]["cycle"]]
    assert cards == expected

    # keyboard: focus the barcode bar of hole #1 and press Enter
    bar = drv.find_element(By.CSS_SELECTOR, "#skinmap-hole-explorer-barcode rect[data-hole='0']")
    drv.execute_script("arguments[0].focus()", bar)
    bar.send_keys("\n")
    wait.until(lambda x: x.execute_script(f"return {gd}.getAttribute('data-hole')") == "1")

    # the slider: the edge count equals the number of pairs within r, counted here by brute force
    for value in (0, 250, 600, 1000):
        drv.execute_script(
            "var s = document.getElementById('skinmap-hole-explorer-radius'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));", value)
        status = drv.find_element(By.ID, "skinmap-hole-explorer-edges")
        r = float(status.get_attribute("data-radius"))
        brute = sum(d[i, j] <= r for i in range(frows.size) for j in range(i + 1, frows.size))
        assert int(status.get_attribute("data-edges")) == brute
        assert drv.execute_script(f"return {gd}.data[1].x.filter(v => v !== null).length") == 2 * brute

    # an empty filter says so
    Select(drv.find_element(By.ID, "skinmap-hole-explorer-fcol")).select_by_value("dataset")
    Select(drv.find_element(By.ID, "skinmap-hole-explorer-fval")).select_by_value("a")
    n_a = int((pts["dataset"] == "a").sum())
    wait.until(lambda x: x.find_element(By.ID, "skinmap-hole-explorer-status").get_attribute("data-matching") == str(n_a))
    Select(drv.find_element(By.ID, "skinmap-hole-explorer-color")).select_by_value("modality")
    assert drv.execute_script(f"return new Set({gd}.data[0].marker.color.filter(c => !c.startsWith('rgba'))).size") == 1

    # box/lasso selection enables the CSV download with the selected ids
    drv.execute_script(f"{gd}.emit('plotly_selected', {{points: [{{curveNumber: 0, pointIndex: 4}}, "
                       f"{{curveNumber: 0, pointIndex: 7}}]}})")
    button = drv.find_element(By.ID, "skinmap-hole-explorer-download")
    assert button.is_enabled() and "2 selected" in button.text
