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

    driver.find_element(By.ID, "file").send_keys(str(image))
    wait.until(lambda d: int(d.find_element(By.ID, "results").get_attribute("data-count")) > 0)
    cards = driver.find_elements(By.CSS_SELECTOR, "#results li")
    first = [c.get_attribute("data-uid") for c in cards]
    assert len(first) == app.k_default
    assert all(c.find_element(By.CLASS_NAME, "dx").text == "sk" for c in cards)  # the planted cluster
    assert driver.execute_script(
        "return document.querySelector('#results img').naturalWidth") > 0  # thumbnails load

    Select(driver.find_element(By.ID, "filter-dataset")).select_by_value("gamma")
    wait.until(lambda d: [c.get_attribute("data-uid") for c in d.find_elements(By.CSS_SELECTOR, "#results li")] != first)
    second = [c.get_attribute("data-uid") for c in driver.find_elements(By.CSS_SELECTOR, "#results li")]
    assert second and all(uid.startswith("gamma/") for uid in second)
    assert driver.find_element(By.ID, "status").get_attribute("class") != "error"
