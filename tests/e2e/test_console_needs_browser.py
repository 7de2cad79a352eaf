"""The needs board in a real browser (headless Chromium, as tests/e2e/test_console_browser.py):
a resident posts without logging in, a scenario files a need and another joins it, the answering
department commits, an operator accepts the resident's need and reads the candidate needs; every
needs page fits a desktop and a phone in both languages. Screenshots under test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.e2e.test_console_browser import browser, log_in, pages_fit, screenshot
from tests.support.http import wait_until
from tests.support.platform import Platform, in_process
from tests.support.principals import OPERATOR, OTHER_SCENARIO, PUBLISHER, SCENARIO, populate

__all__ = ["browser"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console-needs"), served=True, key_name="console", prepare_platform=populate
    ) as running:
        yield running


def _fill(driver: Any, values: dict[str, str]) -> None:
    for element_id, value in values.items():
        driver.find_element(By.ID, element_id).send_keys(value)


def test_from_a_residents_post_to_a_committed_need_through_the_console(
    browser: Any, platform: Platform
) -> None:
    # A resident, without an account, from the login page.
    browser.delete_all_cookies()
    browser.get(f"{platform.base}/console/login")
    browser.find_element(By.ID, "resident-link").click()
    assert browser.current_url.endswith("/console/needs/residents")
    _fill(
        browser,
        {
            "resident-title": "Which pharmacies are open at night",
            "resident-data_wanted": "Opening hours of pharmacies, kept current",
            "resident-serves": "Parents of a sick child at night",
        },
    )
    Select(browser.find_element(By.ID, "resident-domains")).select_by_value("market")
    screenshot(browser, "needs-resident-form")
    browser.find_element(By.ID, "post-need").click()
    posted = browser.find_element(By.ID, "resident-posted").text
    assert "waiting for an operator" in posted
    screenshot(browser, "needs-resident-posted")
    resident_need = posted.rsplit(" ", 1)[-1]

    # A scenario files a need; the other scenario joins it instead of filing a copy.
    log_in(browser, platform, platform.keys[SCENARIO])
    browser.find_element(By.LINK_TEXT, "Needs").click()
    _fill(
        browser,
        {
            "need-title": "Inspection results of pharmacies near hospitals",
            "need-data_wanted": "Latest inspection result per pharmacy",
            "need-purpose": "Send patients to a pharmacy that passed inspection",
            "need-serves": "Outpatients",
        },
    )
    Select(browser.find_element(By.ID, "need-domains")).select_by_value("market")
    Select(browser.find_element(By.ID, "need-urgency")).select_by_value("urgent")
    screenshot(browser, "needs-file")
    browser.find_element(By.ID, "file-need").click()
    browser.find_element(By.ID, "filed-need").click()
    need_url = browser.current_url
    assert "/console/needs/nd-" in need_url

    log_in(browser, platform, platform.keys[OTHER_SCENARIO])
    browser.get(need_url)
    browser.find_element(By.ID, "join-purpose").send_keys("Tell residents which pharmacies passed")
    browser.find_element(By.ID, "join").click()
    assert OTHER_SCENARIO in browser.find_element(By.ID, "requesters").text
    browser.find_element(By.ID, "comments-body").send_keys("Weekly would already help.")
    browser.find_element(By.ID, "comment").click()
    assert "Weekly would already help." in browser.find_element(By.ID, "thread").text

    # The market regulator answers: a commitment with a date.
    log_in(browser, platform, platform.keys[PUBLISHER])
    browser.get(need_url)
    due = date.today() + timedelta(days=30)
    browser.execute_script(
        "arguments[0].value = arguments[1]", browser.find_element(By.ID, "commit-commit_by"), due.isoformat()
    )
    browser.find_element(By.ID, "commit-dataset_id").send_keys("market.pharmacy-inspections")
    browser.find_element(By.ID, "commit").click()
    assert wait_until(lambda: "committed" in browser.find_element(By.TAG_NAME, "h1").text, 10)
    assert due.isoformat() in browser.find_element(By.ID, "answer").text
    assert "need.commit" in browser.find_element(By.ID, "history").text
    screenshot(browser, "need-committed")
    browser.get(f"{platform.base}/console/needs?status=committed")
    assert "Inspection results of pharmacies" in browser.find_element(By.ID, "needs").text
    screenshot(browser, "needs-board")

    # An operator: the moderation queue, the resident's need accepted, the candidate needs.
    platform.ok("GET", "/catalog/v1/datasets", params={"q": "noise levels 13812345678"})
    log_in(browser, platform, platform.keys[OPERATOR])
    browser.get(f"{platform.base}/console/needs")
    browser.find_element(By.ID, "moderation-queue").click()
    assert "Which pharmacies are open at night" in browser.find_element(By.ID, "needs").text
    screenshot(browser, "needs-moderation-queue")
    browser.get(f"{platform.base}/console/needs/{resident_need}")
    browser.find_element(By.ID, "accept").click()
    assert wait_until(lambda: "open" in browser.find_element(By.TAG_NAME, "h1").text, 10)
    browser.get(f"{platform.base}/console/needs/candidates")
    candidates = browser.find_element(By.ID, "candidates").text
    assert "noise levels" in candidates and "13812345678" not in candidates
    screenshot(browser, "needs-candidates")


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_needs_pages_fit_a_desktop_and_a_phone_in_both_languages(
    browser: Any, platform: Platform, language: str
) -> None:
    need = platform.ok(
        "POST",
        "/catalog/v1/needs",
        platform.keys[SCENARIO],
        json={
            "title": "Bus arrival times at hospital stops",
            "domains": ["transport"],
            "data_wanted": "Predicted arrivals at the stops nearest each hospital",
            "purpose": "Plan the ride to the clinic",
            "purpose_category": "public_service",
            "serves": "Outpatients",
            "frequency": "high",
            "urgency": "pressing",
        },
    )["need"]
    pages = {
        "needs-board": "/console/needs",
        "need": f"/console/needs/{need['id']}",
        "needs-candidates": "/console/needs/candidates",
        "needs-resident": "/console/needs/residents",
    }
    log_in(browser, platform, platform.keys[OPERATOR])
    browser.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
    pages_fit(browser, platform, pages, language, ("needs-board", {"zh-CN": "需求", "en": "Needs"}[language]))
