"""End to end in headless Chromium: upload an image, results appear, a filter changes them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import _fake_run

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
         "--window-size=1200,900"]


def _ensure_browser() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium", "chromium-driver"],
                       capture_output=True, timeout=600, check=False)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("headless Chromium unavailable: /usr/bin/chromium or /usr/bin/chromedriver missing "
                    "and `apt-get install -y chromium chromium-driver` did not provide them")


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    _ensure_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(20)
    yield drv
    drv.quit()


def test_upload_results_and_filter(live_server, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, app = live_server
    image = tmp_path / "query.picture"  # the name says nothing: the server checks content
    image.write_bytes(_fake_run.png_bytes(_fake_run.COLOURS[3]))
    driver.get(base + "/")
    wait = WebDriverWait(driver, 60)  # conditions, not sleeps: generous for a loaded machine
    wait.until(lambda d: "Ready" in d.find_element(By.ID, "status").text)

    # Read the rendered list in one script call: no stale elements while the page re-renders.
    def cards(d):
        return d.execute_script(
            "return Array.from(document.querySelectorAll('#results li'))"
            ".map(li => [li.dataset.uid, li.querySelector('.dx').textContent]);")

    driver.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda d: len(cards(d)) > 0)
    first = cards(driver)
    assert len(first) == app.k_default
    assert all(dx == "sk" for _, dx in first)  # the planted cluster of the uploaded colour
    wait.until(lambda d: d.execute_script(
        "return document.querySelector('#results img').naturalWidth") > 0)  # thumbnails load

    Select(driver.find_element(By.ID, "filter-dataset")).select_by_value("gamma")
    wait.until(lambda d: cards(d) != first and len(cards(d)) > 0)
    second = cards(driver)
    assert all(uid.startswith("gamma/") for uid, _ in second)
    assert driver.find_element(By.ID, "status").get_attribute("class") != "error"


# ---------------------------------------------------------------------------- warnings and flags

SHARED_IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "images"


def real_looking_image(tmp_path: Path) -> tuple[Path, str]:
    """A dermoscopy photograph from ../shared/data (read in place, never copied into the repo)
    when present, else a generated photo-like picture: skin-tone shading, a brown lesion, noise."""
    for pattern in ("PH2/images/*.jpg", "ISIC2017/ISIC-2017_Test_v2_Data/*.jpg", "HAM10000/HAM10000_images/*.jpg"):
        found = sorted(SHARED_IMAGES.glob(pattern))
        if found:
            return found[0], "a real image from ../shared/data"
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    skin = np.stack([205 - 25 * yy, 160 - 30 * yy, 135 - 20 * xx], axis=-1)
    lesion = np.exp(-(((xx - 0.5) ** 2 + (yy - 0.55) ** 2) / 0.02))[..., None]
    pixels = skin * (1 - 0.7 * lesion) + np.array([90, 55, 35]) * 0.7 * lesion + rng.normal(0, 6, (256, 256, 3))
    path = tmp_path / "generated-lesion.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(path, quality=90)
    return path, "a generated photo-like image (no ../shared/data)"


@pytest.fixture(scope="module")
def flagged_server(tmp_path_factory):
    from skinmap.atlas.app import AtlasApp
    from skinmap.atlas.server import make_server

    run = _fake_run.add_quality_exports(_fake_run.make_fake_run(tmp_path_factory.mktemp("flagged-run")),
                                        offtopic_rows=(0, 4, 8), clusters=((12, 16, "diagnosis"),))
    app = AtlasApp.from_run_dir(run, cache_dir=tmp_path_factory.mktemp("cache"), embed_fn=_fake_run.colour_embed_fn())
    server = make_server(app, "127.0.0.1", 0, quiet=True).start()
    yield server.url, app
    server.stop()
    app.close()


def _cards(d):
    return d.execute_script(
        "return Array.from(document.querySelectorAll('#results li'))"
        ".map(li => [li.dataset.uid, Number(li.dataset.row), li.querySelectorAll('.badge.flag').length]);")


def _ready(driver, base):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + "/")
    wait = WebDriverWait(driver, 60)  # generous: the test must pass on a loaded machine
    wait.until(lambda d: "Ready" in d.find_element(By.ID, "status").text)
    return wait


def test_real_looking_upload_shows_banner_query_and_ood_warning(flagged_server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    base, app = flagged_server
    image, origin = real_looking_image(tmp_path)
    wait = _ready(driver, base)
    banner = driver.find_element(By.ID, "banner")
    assert "profile: demo" in banner.text and "SYNTHETIC" in banner.text
    assert banner.get_attribute("data-synthetic") == "true"
    assert not driver.find_element(By.ID, "ood").is_displayed()

    driver.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda d: len(_cards(d)) > 0)
    ood = driver.find_element(By.ID, "ood")
    assert ood.is_displayed(), origin
    assert "Unlike anything in the atlas" in ood.text
    # the warning comes before the results, and the query is shown beside them
    assert driver.execute_script(
        "return document.getElementById('ood').compareDocumentPosition(document.getElementById('results'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING") > 0
    wait.until(lambda d: d.execute_script("return document.getElementById('query-img').naturalWidth") > 0)
    assert driver.find_element(By.ID, "query-figure").is_displayed()
    assert {row for _, row, _ in _cards(driver)}.isdisjoint(np_flagged(app))


def np_flagged(app) -> set[int]:
    return {int(r) for r in app.index.flagged.nonzero()[0]}


def test_flagged_images_hidden_by_default_and_shown_with_a_badge_on_toggle(flagged_server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    base, app = flagged_server
    flagged = np_flagged(app)
    assert flagged == {0, 4, 8, 12, 16}
    image = tmp_path / "red.png"
    image.write_bytes(_fake_run.png_bytes(_fake_run.COLOURS[0]))  # the cluster holding every flagged row
    wait = _ready(driver, base)
    k = driver.find_element(By.ID, "k")
    k.clear()
    k.send_keys("40")
    driver.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda d: len(_cards(d)) > 0)
    default = _cards(driver)
    assert {row for _, row, _ in default}.isdisjoint(flagged)
    assert not driver.find_element(By.ID, "ood").is_displayed()  # a planted colour is in distribution

    driver.find_element(By.ID, "show-flagged").click()
    wait.until(lambda d: any(n for *_, n in _cards(d)))
    shown = _cards(driver)
    assert {row for _, row, n in shown if n} == {row for _, row, _ in shown} & flagged
    assert {0, 4, 8} <= {row for _, row, _ in shown}
    assert len({12, 16} & {row for _, row, _ in shown}) == 1  # the conflicting pair: one card
    copies = driver.execute_script(
        "return Array.from(document.querySelectorAll('#results li')).filter(li => li.dataset.row === '12' "
        "|| li.dataset.row === '16').map(li => li.querySelector('.badge.copies').textContent);")
    assert copies and "2" in copies[0]


# ---------------------------------------------------------------------------- the real demo atlas


def _demo_run() -> Path | None:
    import os

    for candidate in (os.environ.get("SKINMAP_DEMO_RUN"), Path(__file__).resolve().parents[2] / "runs" / "demo"):
        if candidate and (Path(candidate) / "embedding" / "fused.npy").is_file():
            return Path(candidate)
    return None


@pytest.mark.slow
def test_real_image_against_the_demo_atlas(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = _demo_run()
    if run is None:
        pytest.skip("no built demo run: set SKINMAP_DEMO_RUN or build runs/demo (python -m skinmap book)")
    pytest.importorskip("skinmap.embed.pipeline", reason="the embedding pipeline is not installed")
    from skinmap.atlas.app import AtlasApp
    from skinmap.atlas.server import make_server

    image, origin = real_looking_image(tmp_path)
    app = AtlasApp.from_run_dir(run, cache_dir=tmp_path / "cache")
    if app.embed_fn is None:
        app.close()
        pytest.skip("the demo run's embedding models cannot be loaded")
    server = make_server(app, "127.0.0.1", 0, quiet=True).start()
    try:
        _ready(driver, server.url)
        banner = driver.find_element(By.ID, "banner").text
        assert "profile: demo" in banner and "SYNTHETIC" in banner
        driver.find_element(By.ID, "file").send_keys(str(image))
        WebDriverWait(driver, 300).until(lambda d: len(_cards(d)) > 0 or "error" in
                                         d.find_element(By.ID, "status").get_attribute("class"))
        assert driver.find_element(By.ID, "ood").is_displayed(), f"{origin}: no OOD warning"
        flagged = np_flagged(app)
        assert flagged and {row for _, row, _ in _cards(driver)}.isdisjoint(flagged)
        # a flagged (off-topic) image's neighbours: other flagged images only when asked for
        uid = str(app.metadata["uid"].iloc[min(flagged)])
        driver.find_element(By.ID, "uid").send_keys(uid)
        driver.find_element(By.CSS_SELECTOR, "#uid-form button").click()
        WebDriverWait(driver, 60).until(lambda d: uid in d.find_element(By.ID, "query-caption").text)
        assert {row for _, row, _ in _cards(driver)}.isdisjoint(flagged)
    finally:
        server.stop()
        app.close()
