"""The dashboard page in real headless Chromium (selenium), against an executor scanning the
simulated site in virtual time, one scan per 10 ms of real time (``paced``): statistics update live, a forced input changes the program's
behaviour, a write without the token is refused on the page. Waits poll with timeouts; nothing
about timing is asserted. A screenshot is saved to $PLCRUN_ARTIFACTS (or the test's tmp folder)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_site import TOKEN, dashboard, get, paced, site_executor

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.browser

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TIMEOUT_S = 20


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(binary) or shutil.which(binary)):
            pytest.skip(f"{binary} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--window-size=1400,1700",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _artifact_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PLCRUN_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _text(driver: Any, css: str) -> str:
    """Text of the first element matching ``css``, read in one step (the page re-renders parts of
    itself four times a second, so element references go stale)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';"
    return str(driver.execute_script(script, css)).strip()


def _click(driver: Any, css: str) -> bool:
    """Click the element matching ``css`` if it is there now (for use inside ``wait.until``)."""
    try:
        driver.find_element(By.CSS_SELECTOR, css).click()
    except (NoSuchElementException, StaleElementReferenceException):
        return False
    return True


def _scans(driver: Any) -> int:
    text = _text(driver, "#task-DEFAULT [data-counter='scans'] b")
    return int(text) if text.isdigit() else -1


def _watch(driver: Any, wait: Any, path: str) -> str:
    """Search for ``path`` in the variable tree and add it to the watch; the CSS of its watch row."""
    search = driver.find_element(By.ID, "search")
    search.clear()
    search.send_keys(path)
    row = f"#watch tr[data-path='{path}']"
    wait.until(
        lambda d: _click(d, f"#tree li[data-path='{path}'] > button.watch") and _text(d, row + " td.path")
    )
    return row


def test_the_page_shows_live_statistics_and_forces_change_the_program(browser: Any, tmp_path: Path) -> None:
    executor = site_executor(virtual=True)
    with paced(executor), dashboard(executor, token=TOKEN, stats_ttl_s=0.2) as server:
        browser.get(server.url)
        wait = WebDriverWait(browser, TIMEOUT_S, poll_frequency=0.1)
        first = wait.until(lambda d: _scans(d) if _scans(d) > 0 else None)
        wait.until(lambda d: _scans(d) > first)  # the statistics move while we look
        assert _text(browser, "#scan-state") == "scanning"
        assert "every 10 ms" in _text(browser, "#task-DEFAULT")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ev-table tbody tr")) == 3)
        assert _text(browser, "#ev-table tbody tr[data-slot='1'] td .q") == "GOOD"
        wait.until(lambda d: "sim" in _text(d, "#drivers tbody"))

        frequency = _watch(browser, wait, "main.grid_hz")
        _watch(browser, wait, "main.under_frequency")
        under = "#watch tr[data-path='main.under_frequency'] td.value"
        wait.until(lambda d: _text(d, under) == "FALSE")

        # without the token a write is refused, and the page says why
        browser.find_element(By.CSS_SELECTOR, frequency + " input.value-input").send_keys("49.5")
        browser.find_element(By.CSS_SELECTOR, frequency + " button.write").click()
        wait.until(lambda d: "refused (401)" in _text(d, "#message"))
        assert "write main.grid_hz refused (401): a token is needed" in _text(browser, "#message")
        assert "error" in browser.find_element(By.ID, "message").get_attribute("class")
        assert executor.journal.entries() == []

        # with the token the forced frequency drives the program's under-frequency output
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "token-save").click()
        wait.until(lambda d: _text(d, "#token-state") == "set")
        browser.find_element(By.CSS_SELECTOR, frequency + " button.force").click()
        wait.until(lambda d: "queued" in _text(d, "#message"))
        wait.until(lambda d: _text(d, under) == "TRUE")
        forced = "return document.querySelector(arguments[0]).classList.contains('forced');"
        wait.until(lambda d: d.execute_script(forced, frequency))
        assert _text(browser, "#watch tr[data-path='main.grid_hz'] td.value") == "49.5"
        assert get(server, "/api/variable?path=main.under_frequency")["value"] is True
        assert get(server, "/api/variable?path=main.droop_w")["value"] == pytest.approx(-50_000.0)
        wait.until(lambda d: "forced main.grid_hz" in _text(d, "#forces"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#chart-legend span")) == 4)
        browser.save_screenshot(str(_artifact_dir(tmp_path) / "dashboard.png"))

        browser.find_element(By.CSS_SELECTOR, frequency + " button.release").click()
        wait.until(lambda d: _text(d, under) == "FALSE")
        assert get(server, "/api/journal")["forces"] == {}

        problems = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
        # the refused force is logged by Chromium as a failed request (401); nothing else may fail
        assert [p for p in problems if "401" not in p.get("message", "")] == []
