"""The static hole explorer: self-contained HTML, one loop trace per hole, working controls."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinmap.viz.hole_explorer import build_hole_explorer, hole_explorer_html, standalone_page


def _points(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n), "y": rng.normal(size=n), "uid": [f"d/{i}" for i in range(n)],
        "dataset": rng.choice(["a", "b"], n), "fst": pd.array(rng.choice([1, 2, pd.NA], n), dtype="Int64"),
        "modality": "clinical", "diagnosis": "nevus",
    })


def _payload(html):
    return json.loads(re.search(r"var D = (\{.*?\});\n", html).group(1))


def test_fragment_is_offline_and_carries_holes():
    pts = _points()
    holes = [{"rank": 1, "persistence": 0.5, "cycle": [1, 2, 3], "boundary": [1, 2, 3, 9]},
             {"rank": 2, "persistence": 0.2, "cycle": [5, 6, 7, 8], "boundary": [5]}]
    html = hole_explorer_html(pts, holes, include_plotlyjs=True)
    offline = re.search(r'<script[^>]*src="https?://', html) is None  # plotly.js inlined, no CDN
    assert offline and "<script" in html
    data = _payload(html)
    assert data["n"] == 40 and [h["n_cycle"] for h in data["holes"]] == [3, 4]
    assert data["thumbs"] is None
    assert sorted(data["meta"]["fst"]) == sorted(["NA" if pd.isna(v) else str(v) for v in pts["fst"]])
    for col in ("hole", "f-dataset", "f-fst", "f-modality"):
        assert f'id="skinmap-hole-explorer-{col}"' in html
    assert standalone_page(html).startswith("<!DOCTYPE html>")


def test_build_subsamples_but_keeps_hole_rows_and_embeds_thumbnails(tmp_path):
    pts = _points(200)
    paths = []
    for i in range(200):
        p = tmp_path / f"{i}.png"
        if i < 3:
            Image.new("RGB", (20, 10), (i * 50, 0, 0)).save(p)
        paths.append(str(p) if i < 3 else None)
    pts["path"] = paths
    holes = [{"rank": 1, "persistence": 1.0, "cycle": [0, 150, 199], "boundary": [0, 1, 2, 150, 199]}]
    html = build_hole_explorer(pts, holes, max_points=30, thumbnails=True, thumbnail_px=16, include_plotlyjs="cdn")
    data = _payload(html)
    assert data["n"] == 30
    kept_uids = data["meta"]["uid"]
    assert {"d/0", "d/150", "d/199", "d/1", "d/2"} <= set(kept_uids)
    thumbs = dict(zip(kept_uids, data["thumbs"]))
    assert thumbs["d/0"].startswith("data:image/jpeg;base64,") and thumbs["d/150"] is None
    hole_xy = list(zip(data["holes"][0]["x"], data["holes"][0]["y"]))
    assert hole_xy == list(zip(pts.x[[0, 150, 199]], pts.y[[0, 150, 199]]))


@pytest.mark.browser
def test_controls_work_in_headless_chromium(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not shutil.which("chromedriver"):
        pytest.skip("chromedriver not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    holes = [{"rank": 1, "persistence": 0.5, "cycle": [1, 2, 3], "boundary": [1, 2, 3]},
             {"rank": 2, "persistence": 0.2, "cycle": [5, 6, 7], "boundary": [5]}]
    page = tmp_path / "explorer.html"
    page.write_text(standalone_page(hole_explorer_html(_points(), holes)))
    opts = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts)
    try:
        driver.get(page.as_uri())
        gd = "document.getElementById('skinmap-hole-explorer-plot')"
        driver.implicitly_wait(5)
        from selenium.webdriver.support.ui import WebDriverWait  # wait on the plot, not a fixed time

        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: d.execute_script(f"return ({gd} && {gd}.data) ? {gd}.data.length : 0") == 5)
        assert driver.execute_script(f"return {gd}.data.length") == 5
        Select(driver.find_element(By.ID, "skinmap-hole-explorer-hole")).select_by_value("1")
        assert driver.execute_script(f"return {gd}.data.map(t => t.visible === true)") == [False, False, False, True, True]
        Select(driver.find_element(By.ID, "skinmap-hole-explorer-f-dataset")).select_by_value("a")
        n_faded = driver.execute_script(f"return {gd}.data[0].marker.color.filter(c => c.startsWith('rgba')).length")
        assert n_faded == int((_points()["dataset"] != "a").sum())
        driver.execute_script(f"{gd}.emit('plotly_hover', {{points: [{{customdata: 3}}]}})")
        assert "d/3" in driver.find_element(By.ID, "skinmap-hole-explorer-panel").text
    finally:
        driver.quit()
