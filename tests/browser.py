"""Debian's headless Chromium driven by Selenium, for the tests that open real pages."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def chromium(window: str = "1400,1000") -> Iterator[Any]:
    """A headless Chromium WebDriver; in CI a missing browser fails, never skips."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        if os.environ.get("CI"):
            pytest.fail("chromium/chromedriver missing: deploy/chromium/install.sh installs them")
        pytest.skip("chromium/chromedriver not installed (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={window}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
