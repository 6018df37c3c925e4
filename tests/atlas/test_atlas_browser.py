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
    wait = WebDriverWait(driver, 15)
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
