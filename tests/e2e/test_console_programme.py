"""The scenario programme in the console, in a real browser (headless Chromium, as
tests/e2e/test_console_browser.py drives it): the public opportunity list without logging in, the
owner's proposals side by side and its selection, and the scenario's page with its stage history,
in both languages at a desktop's and a phone's width. Screenshots under test-artifacts/console/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.e2e.test_console_browser import (  # noqa: F401  (the browser fixture)
    WIDTHS,
    _broken_words,
    _overflow,
    browser,
    log_in,
    screenshot,
    text_of,
)
from tests.factories import opening_create, proposal_create
from tests.support.http import wait_until
from tests.support.platform import Platform, in_process
from tests.support.principals import APPROVER, OPERATOR, populate

pytestmark = pytest.mark.slow
OPENING_TITLE = "Inspection results on the street map"


def _programme(platform: Platform) -> None:
    """The console's people, a published list with an opening of market supervision, two proposals."""
    populate(platform)
    ops = platform.keys[OPERATOR]
    platform.ok(
        "POST", "/catalog/v1/opportunity-lists", ops, json={"id": "q1-2027", "title": "2027 Q1, markets"}
    )
    opening = opening_create(
        title=OPENING_TITLE,
        owner_department_id="market-supervision",
        datasets=["market.inspections"],
        domains=["market"],
        data_offered="Inspection results by district, daily; inspector phones masked.",
    )
    platform.ok("POST", "/catalog/v1/opportunity-lists/q1-2027/openings", ops, json=opening)
    [published] = platform.ok("POST", "/catalog/v1/opportunity-lists/q1-2027/publish", ops)["openings"]
    platform.context["opening_id"] = str(published["id"])
    for applicant, title in (("map-lab", "Street map of results"), ("shop-guide", "Shop safety guide")):
        key = platform.organisation(applicant, vetted_by=OPERATOR)
        wanted = [{"dataset_id": "market.inspections", "fields": ["inspection_id", "district", "result"]}]
        platform.ok(
            "POST",
            f"/catalog/v1/openings/{published['id']}/proposals",
            key,
            json=proposal_create(title, datasets=wanted),
        )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console-programme"),
        served=True,
        key_name="console",
        prepare_platform=_programme,
    ) as running:
        yield running


def _language(driver: Any, language: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
    assert wait_until(lambda: driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == language, 5)


def _fits(driver: Any, url: str, name: str) -> dict[str, int]:
    """The page at both widths, a screenshot of each; how far it overflows, by width."""
    overflowing = {}
    try:
        for width_name, width in WIDTHS.items():
            driver.set_window_size(width, 1000)
            driver.get(url)
            screenshot(driver, f"{name}-{width_name}")
            if (extra := _overflow(driver)) > 0:
                overflowing[f"{name} at {width} px"] = extra
            if width_name == "desktop":
                assert _broken_words(driver) == [], name
    finally:
        driver.set_window_size(1280, 1600)
    return overflowing


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_opportunity_list_is_public_and_fits_a_desktop_and_a_phone(
    browser: Any,  # noqa: F811
    platform: Platform,
    language: str,
) -> None:
    browser.get(f"{platform.base}/console/login")
    browser.delete_all_cookies()
    browser.get(f"{platform.base}/console/opportunity-lists")
    assert "/console/login" not in browser.current_url  # no key needed
    _language(browser, language)
    heading = {"zh-CN": "机会清单", "en": "Opportunity lists"}[language]
    assert browser.find_element(By.TAG_NAME, "h1").text == heading
    assert OPENING_TITLE in browser.find_element(By.ID, "list-q1-2027").text
    overflowing = _fits(
        browser, f"{platform.base}/console/opportunity-lists", f"opportunity-lists-{language}"
    )
    browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window (px): {overflowing}"


def test_the_owner_compares_proposals_side_by_side_and_the_scenario_page_shows_its_stages(
    browser: Any,  # noqa: F811
    platform: Platform,
) -> None:
    log_in(browser, platform, platform.keys[APPROVER])
    proposals = f"{platform.base}/console/openings/{platform.context['opening_id']}/proposals"
    browser.get(proposals)
    table = browser.find_element(By.ID, "side-by-side").text
    assert "Street map of results" in table and "Shop safety guide" in table
    assert "2 / 2" in browser.find_element(By.ID, "fields-asked").text
    browser.find_element(By.CSS_SELECTOR, 'input[name="proposal_ids"]').click()
    browser.find_element(By.ID, "selection-reason").send_keys("Clearest plan for residents")
    screenshot(browser, "proposals-selecting")
    browser.find_element(By.ID, "select").click()
    assert wait_until(lambda: "/console/scenarios/" in browser.current_url, 10), browser.current_url
    assert browser.find_element(By.ID, "scenario-stage").text == "approved"
    assert "Clearest plan for residents" in browser.find_element(By.ID, "stage-history").text
    scenario = browser.current_url

    log_in(browser, platform, platform.keys[OPERATOR])
    browser.get(scenario)
    Select(browser.find_element(By.ID, "stage-choice")).select_by_value("live")
    browser.find_element(By.ID, "stage-reason").send_keys("Too early")
    browser.find_element(By.ID, "move-stage").click()
    # a move the lifecycle does not allow: the catalog's reason next to the form
    assert "approved" in browser.find_element(By.CSS_SELECTOR, "#stage-form [role=alert]").text
    Select(browser.find_element(By.ID, "stage-choice")).select_by_value("building")
    browser.find_element(By.ID, "stage-reason").clear()
    browser.find_element(By.ID, "stage-reason").send_keys("Team and data in place")
    browser.find_element(By.ID, "move-stage").click()
    assert wait_until(lambda: text_of(browser, "scenario-stage") == "building", 10)
    assert "Team and data in place" in browser.find_element(By.ID, "stage-history").text

    overflowing: dict[str, int] = {}
    try:
        for language, building, decided in (("zh-CN", "建设中", "已确定"), ("en", "building", "decided")):
            log_in(browser, platform, platform.keys[OPERATOR])
            _language(browser, language)
            overflowing |= _fits(browser, scenario, f"scenario-stages-{language}")
            assert browser.find_element(By.ID, "scenario-stage").text == building
            log_in(browser, platform, platform.keys[APPROVER])
            _language(browser, language)
            overflowing |= _fits(browser, proposals, f"proposals-{language}")
            assert browser.find_element(By.ID, "opening-status").text == decided
    finally:
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window (px): {overflowing}"
