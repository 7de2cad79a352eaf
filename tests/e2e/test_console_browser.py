"""The console in a real browser: headless Chromium (Debian's chromium and chromium-driver,
installed by ``make tools``) driven by Selenium against ``citybase up`` served by uvicorn in this
process. Screenshots of the main pages are kept under test-artifacts/console/.

Without chromium or chromedriver the tests are skipped on a developer's machine and fail when
``CI=true``, as the tests that need Kafka or PostgreSQL do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from citybase.demo import FaultRates
from tests.support.http import wait_until
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform, in_process
from tests.support.principals import APPROVER, OPERATOR, SCENARIO, populate

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking")

pytestmark = pytest.mark.slow


def _require_chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "chromium and chromedriver are not installed (run `make tools`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, chromedriver = _require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1600")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console-browser"),
        served=True,
        key_name="console",
        environment=SHORT_QUALITY_WINDOWS,
        prepare_platform=populate,
    ) as running:
        yield running


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def log_in(driver: Any, platform: Platform, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{platform.base}/console/")
    assert "/console/login" in driver.current_url
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    assert wait_until(lambda: "/console/login" not in driver.current_url, 10)


def test_an_approver_approves_with_fewer_fields_and_a_mask_and_sees_the_grant(
    browser: Any, platform: Platform
) -> None:
    request = platform.request_access(SCENARIO)
    browser.get(f"{platform.base}/console/login")
    browser.find_element(By.ID, "key").send_keys("cbk_00000000_wrong")
    browser.find_element(By.ID, "login").click()
    assert "not valid" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    screenshot(browser, "login-refused")

    log_in(browser, platform, platform.keys[APPROVER])
    screenshot(browser, "home-approver")
    browser.find_element(By.LINK_TEXT, "Access requests").click()
    screenshot(browser, "access-requests")
    browser.find_element(By.LINK_TEXT, request["id"]).click()
    browser.find_element(By.ID, "field-inspected_at").click()  # narrowed: not needed for the purpose
    Select(browser.find_element(By.ID, "mask-district")).select_by_value("hash")
    browser.find_element(By.ID, "approve-reason").send_keys("Street-level view of inspection results")
    screenshot(browser, "access-request-approve")
    browser.find_element(By.ID, "approve").click()

    assert wait_until(lambda: "/console/grants/" in browser.current_url, 10), browser.current_url
    assert browser.find_element(By.ID, "grant-status").text == "active"
    fields = browser.find_element(By.ID, "grant-fields").text
    assert "inspected_at" not in fields
    assert "district masked: hash" in fields
    assert "inspector_phone masked: partial" in fields  # the contract's own rule for a sensitive field
    screenshot(browser, "grant")
    grant_id = browser.current_url.rsplit("/", 1)[-1]
    assert platform.ok("GET", f"/catalog/v1/grants/{grant_id}")["masking"]["district"]["kind"] == "hash"

    log_in(browser, platform, platform.keys[SCENARIO])
    browser.find_element(By.LINK_TEXT, "My scenario").click()
    assert grant_id in browser.find_element(By.ID, "grants").text
    screenshot(browser, "scenario")
    browser.get(f"{platform.base}/console/access-requests")
    assert "Not for your role" in browser.page_source
    browser.find_element(By.ID, "logout").click()
    assert wait_until(lambda: "/console/login" in browser.current_url, 10)


def test_an_operator_sees_the_quality_chart_move_after_demo_traffic(browser: Any, platform: Platform) -> None:
    dataset = "transport.bus-arrivals"
    platform.demo_traffic(dataset, 100, seed=1)
    log_in(browser, platform, platform.keys[OPERATOR])

    def chart() -> tuple[int, str]:
        browser.get(f"{platform.base}/console/datasets/{dataset}")
        svg = browser.find_element(By.ID, "quality-chart")
        return int(svg.get_attribute("data-points")), svg.get_attribute("data-last")

    assert wait_until(lambda: chart()[0] >= 1, 30), "no quality window closed for the first traffic"
    points, last = chart()
    assert float(last) > 90  # valid records

    # A burst of records missing required fields: rejected by ingest, counted by quality.
    platform.demo_traffic(dataset, 100, faults=FaultRates(null=0.6), seed=2)
    assert wait_until(lambda: chart()[0] > points, 30), "the chart did not gain a point"
    moved_points, moved_last = chart()
    assert float(moved_last) < float(last)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#quality-chart circle.dot")) == moved_points
    screenshot(browser, "dataset")
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "quality-chart"))
    screenshot(browser, "dataset-quality")

    browser.find_element(By.LINK_TEXT, "Operations").click()
    assert dataset in browser.find_element(By.ID, "worst").text
    screenshot(browser, "overview")
    browser.find_element(By.LINK_TEXT, "Catalog").click()
    screenshot(browser, "catalog")
    browser.get(f"{platform.base}/console/audit?action=access_request")
    assert "access_request.approve" in browser.find_element(By.ID, "audit").text
    screenshot(browser, "audit")


PAGES = {
    "home": "/console/",
    "catalog": "/console/datasets",
    "dataset": "/console/datasets/transport.bus-arrivals",
    "overview": "/console/overview",
    "scenarios": "/console/scenarios",
    "audit": "/console/audit",
}
WIDTHS = {"desktop": 1400, "phone": 390}


def _overflow(driver: Any) -> int:
    """How far the page is wider than the window (0: nothing to scroll sideways)."""
    return int(driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_page_in_both_languages_fits_a_desktop_and_a_phone(
    browser: Any, platform: Platform, language: str
) -> None:
    log_in(browser, platform, platform.keys[OPERATOR])
    # the switch on the page, as a person would use it
    browser.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
    heading = {"zh-CN": "数据目录", "en": "Catalog"}[language]
    overflowing: dict[str, int] = {}
    try:
        for width_name, width in WIDTHS.items():
            browser.set_window_size(width, 1000)
            for name, path in PAGES.items():
                browser.get(f"{platform.base}{path}")
                assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
                if name == "catalog":
                    assert browser.find_element(By.TAG_NAME, "h1").text == heading
                screenshot(browser, f"{name}-{language}-{width_name}")
                if (extra := _overflow(browser)) > 0:
                    overflowing[f"{name} at {width} px"] = extra
    finally:
        browser.set_window_size(1280, 1600)
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window (px): {overflowing}"
