"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (PROJECT_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    """The real datasets, read in place; tests that need them skip with a reason when absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (they are never part of the repo)")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic", "--window-size=1280,900",
)


def _find_or_install_chromium() -> tuple[str | None, str | None, str]:
    """Paths of Debian's chromium and chromedriver, installing them with apt-get when missing;
    a reason when they are still missing."""
    import os
    import shutil
    import subprocess

    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chrome and driver:
        return chrome, driver, ""
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=False, capture_output=True
        )
        chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chrome and driver:
        return chrome, driver, ""
    return None, None, "headless Chromium is not available (apt-get install chromium chromium-driver failed)"


_CHROMIUM: dict[str, tuple[str | None, str | None, str]] = {}


def pytest_collection_modifyitems(session, config, items) -> None:
    """Install the browser once, before the first test of the session, when any browser test is
    selected: a test that checks for chromedriver itself must not run before the install."""
    if any(item.get_closest_marker("browser") for item in items) and "paths" not in _CHROMIUM:
        _CHROMIUM["paths"] = _find_or_install_chromium()


def _ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver (installed at collection); skip, or fail in CI, without."""
    import os

    if "paths" not in _CHROMIUM:
        _CHROMIUM["paths"] = _find_or_install_chromium()
    chrome, driver, reason = _CHROMIUM["paths"]
    if not (chrome and driver):
        if os.environ.get("CI"):
            pytest.fail(reason)  # in CI a missing browser must not pass silently
        pytest.skip(reason)
    return chrome, driver


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium driven by selenium (Debian chromium + chromium-driver)."""
    selenium = pytest.importorskip("selenium")  # noqa: F841
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome, driver_path = _ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
