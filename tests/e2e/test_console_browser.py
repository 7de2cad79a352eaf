"""The console in a real browser: headless Chromium (Debian's chromium and chromium-driver,
installed by ``make tools``) driven by Selenium against ``citybase up`` served by uvicorn in this
process. Screenshots of the main pages are kept under test-artifacts/console/.

Without chromium or chromedriver the tests are skipped on a developer's machine and fail when
``CI=true``, as the tests that need Kafka or PostgreSQL do.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from citybase.demo import FaultRates
from services.console.evaluation_view import this_month
from tests.factories import evolve_contract, opening_create, proposal_create, renamed_contract
from tests.support.evaluation_cast import DATASET, EVALUATOR, FAST, evaluation_cast
from tests.support.http import wait_until
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform, in_process
from tests.support.principals import APPROVER, OPERATOR, OTHER_SCENARIO, PUBLISHER, SCENARIO, populate

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
    driver.get(f"{platform.base}/console/login")  # cookies are deleted for the site shown (not a file)
    driver.delete_all_cookies()
    driver.get(f"{platform.base}/console/")
    assert "/console/login" in driver.current_url
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    assert wait_until(lambda: "/console/login" not in driver.current_url, 10)
    # The page the login leads to loads to its end before the caller opens another: a page opened
    # while it still loads can be replaced by it under an element already found (a stale element).
    assert wait_until(lambda: driver.execute_script("return document.readyState") == "complete", 10)


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
    browser.set_window_size(WIDTHS["desktop"], 1000)
    try:
        # a request id stays on one line beside a long purpose
        assert _broken_words(browser) == []
    finally:
        browser.set_window_size(1280, 1600)
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
    "open data": "/console/public/datasets",
    "open dataset": "/console/public/datasets/transport.bus-arrivals",
}
WIDTHS = {"desktop": 1400, "phone": 390}


def _overflow(driver: Any) -> int:
    """How far the page is wider than the window (0: nothing to scroll sideways)."""
    return int(driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth"))


def _wider_than_the_window(driver: Any) -> list[str]:
    """The elements that reach past the window's right edge, to say what makes a page too wide."""
    found: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('body *')]"
        ".filter((e) => e.getBoundingClientRect().right > window.innerWidth)"
        ".map((e) => `${e.tagName.toLowerCase()}#${e.id}`).slice(0, 20)"
    )
    return found


WORDS_KEPT_WHOLE = "h1, h2, h3, th, label, legend, summary, .stat span, code"
"""Headings, labels, column heads and identifiers: none of their words may break across lines."""
_BROKEN_WORDS = """
const found = new Set();
for (const element of document.querySelectorAll(arguments[0])) {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const word of node.data.matchAll(/[A-Za-z0-9_]{2,}/g)) {
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      const lines = new Set(
        [...range.getClientRects()].filter((box) => box.width > 0).map((box) => Math.round(box.top))
      );
      if (lines.size > 1) found.add(`${element.tagName.toLowerCase()}: ${word[0]}`);
    }
  }
}
return [...found];
"""


def _broken_words(driver: Any) -> list[str]:
    """The words of headings, labels, column heads and identifiers that the page breaks across
    two lines (``wait_minute`` / ``s``): each word is measured where it is drawn, a range of its
    letters, and a word drawn on more than one line is broken. A break at a separator (a space,
    ``-``, ``.``, ``/``) is not a broken word."""
    found: list[str] = driver.execute_script(_BROKEN_WORDS, WORDS_KEPT_WHOLE)
    return found


def test_the_broken_words_check_sees_a_word_split_across_lines(browser: Any, tmp_path: Path) -> None:
    page = tmp_path / "narrow.html"
    page.write_text(
        '<table><tr><th style="width: 3rem; overflow-wrap: anywhere">wait_minutes</th>'
        '<th style="width: 3rem">wait minutes</th></tr></table>'
    )
    browser.get(page.as_uri())
    assert _broken_words(browser) == ["th: wait_minutes"]


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_page_in_both_languages_fits_a_desktop_and_a_phone(
    browser: Any, platform: Platform, language: str
) -> None:
    log_in(browser, platform, platform.keys[OPERATOR])
    # the switch on the page, as a person would use it
    browser.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
    pages_fit(
        browser, platform, PAGES, language, ("catalog", {"zh-CN": "数据目录", "en": "Catalog"}[language])
    )


def pages_fit(
    browser: Any, platform: Platform, pages: dict[str, str], language: str, heading: tuple[str, str]
) -> None:
    """Each page, in ``language`` (already chosen), fits a desktop and a phone with no word broken
    at desktop width; the page named in ``heading`` has that ``h1``. Screenshots of each."""
    overflowing: dict[str, int] = {}
    broken: dict[str, list[str]] = {}
    try:
        for width_name, width in WIDTHS.items():
            browser.set_window_size(width, 1000)
            for name, path in pages.items():
                browser.get(f"{platform.base}{path}")
                assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
                if name == heading[0]:
                    assert browser.find_element(By.TAG_NAME, "h1").text == heading[1]
                screenshot(browser, f"{name}-{language}-{width_name}")
                if (extra := _overflow(browser)) > 0:
                    overflowing[f"{name} at {width} px"] = extra
                if width_name == "desktop" and (words := _broken_words(browser)):
                    broken[name] = words
    finally:
        browser.set_window_size(1280, 1600)
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window (px): {overflowing}"
    assert not broken, f"words broken across lines at {WIDTHS['desktop']} px: {broken}"


@pytest.fixture(scope="module")
def pages_with_ids(platform: Platform) -> dict[str | None, dict[str, str]]:
    """The pages about one thing (a request, a grant, a subscription, a principal), by the role
    that sees them (None: the admin), each with a thing of its kind made through the APIs."""
    pending = platform.request_access(SCENARIO)["id"]
    granted = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{platform.request_access(SCENARIO)['id']}/approve",
        platform.keys[APPROVER],
        json={"reason": "every page in both languages"},
    )["grant_id"]
    subscribe = lambda: platform.call(  # noqa: E731
        "POST", "/feeds/v1/subscriptions", platform.keys[SCENARIO], json={"dataset": "market.inspections"}
    )
    assert wait_until(lambda: subscribe().status_code in (201, 409), 15), "the grant did not reach feeds"
    subscriptions = platform.ok("GET", "/feeds/v1/subscriptions", platform.keys[SCENARIO])["items"]
    subscription = next(s["id"] for s in subscriptions if s["dataset"] == "market.inspections")
    return {
        APPROVER: {
            "access-requests": "/console/access-requests",
            "access-request": f"/console/access-requests/{pending}",
            "grant": f"/console/grants/{granted}",
        },
        SCENARIO: {"subscription": f"/console/subscriptions/{subscription}"},
        None: {"principal": f"/console/principals/{APPROVER}"},
    }


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_page_about_one_thing_in_both_languages_fits_a_desktop_and_a_phone(
    browser: Any, platform: Platform, language: str, pages_with_ids: dict[str | None, dict[str, str]]
) -> None:
    overflowing: dict[str, str] = {}
    broken: dict[str, list[str]] = {}

    def check(name: str, path: str) -> None:
        for width_name, width in WIDTHS.items():
            browser.set_window_size(width, 1000)
            browser.get(f"{platform.base}{path}")
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language, path
            assert browser.find_elements(By.TAG_NAME, "h1"), f"{name}: no page"
            screenshot(browser, f"{name}-{language}-{width_name}")
            if _overflow(browser) > 0:
                overflowing[f"{name} at {width} px"] = str(_wider_than_the_window(browser))
            if width_name == "desktop" and (words := _broken_words(browser)):
                broken[name] = words

    try:
        browser.delete_all_cookies()
        check("login", f"/console/login?lang={language}")
        for who, pages in pages_with_ids.items():
            log_in_speaking(browser, platform, platform.keys[who] if who else platform.admin_key, language)
            for name, path in pages.items():
                check(name, path)
    finally:
        browser.set_window_size(1280, 1600)
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window: {overflowing}"
    assert not broken, f"words broken across lines at {WIDTHS['desktop']} px: {broken}"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_html_scorecard_fits_a_desktop_and_a_phone(
    browser: Any, platform: Platform, language: str, tmp_path: Path
) -> None:
    """Quality's HTML scorecard, as a department saves and opens it: in the language asked for,
    no wider than the window, no word of a heading or column head broken."""
    answer = platform.call(
        "GET",
        "/quality/v1/scorecards/departments/market-supervision",
        params={"format": "html"},
        headers={"Accept-Language": language},
    )
    assert answer.status_code == 200, answer.text
    page = tmp_path / "scorecard.html"
    page.write_text(answer.text, encoding="utf-8")
    overflowing = _saved_page_at_each_width(browser, page, language, "scorecard")
    assert not overflowing, f"the scorecard is wider than the window (px): {overflowing}"


def _saved_page_at_each_width(
    browser: Any, page: Path, language: str, name: str, *, showing: str = ""
) -> dict[str, int]:
    """Open a saved page at each of :data:`WIDTHS` with a screenshot each: in ``language``, showing
    ``showing``, no word broken at desktop width; the pixels it is wider than each window it
    overflows."""
    overflowing: dict[str, int] = {}
    try:
        for width_name, width in WIDTHS.items():
            browser.set_window_size(width, 1000)
            browser.get(page.as_uri())
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
            assert showing in browser.find_element(By.TAG_NAME, "body").text
            screenshot(browser, f"{name}-{language}-{width_name}")
            if (extra := _overflow(browser)) > 0:
                overflowing[width_name] = extra
            if width_name == "desktop":
                assert _broken_words(browser) == []
    finally:
        browser.set_window_size(1280, 1600)
    return overflowing


def text_of(driver: Any, element_id: str, by: str = By.ID) -> str:
    """The text of an element while the page may be reloading after a form was sent: an element
    of the page that was just replaced has no text yet (a stale element, not a failure)."""
    try:
        text: str = driver.find_element(by, element_id).text
    except StaleElementReferenceException:
        return ""
    return text


def lang_of(driver: Any) -> str | None:
    """The page's language while it may be reloading (None for a page just replaced)."""
    try:
        lang: str | None = driver.find_element(By.TAG_NAME, "html").get_attribute("lang")
    except StaleElementReferenceException:
        return None
    return lang


def subscribed(driver: Any, platform: Platform, scenario_id: str, dataset_id: str) -> bool:
    """Subscribe with the button on the scenario's page, and be on the subscription's page; False
    while the grant has not reached feeds (no button yet, no subscription)."""
    driver.get(f"{platform.base}/console/scenarios/{scenario_id}")
    buttons = driver.find_elements(By.ID, f"subscribe-{dataset_id}")
    if not buttons:
        # An earlier click subscribed although its page did not follow (a slow answer): the
        # scenario page lists the subscription instead of the button.
        links = driver.find_elements(
            By.XPATH, f'//table[@id="subscriptions"]//tr[td[text()="{dataset_id}"]]//a'
        )
        if links:
            driver.get(links[0].get_attribute("href"))
        return bool(links)
    buttons[0].click()
    return "/console/subscriptions/" in driver.current_url


def log_in_speaking(driver: Any, platform: Platform, key: str, language: str) -> None:
    """Log in, then pick ``language`` with the switch on the page, as a person would."""
    log_in(driver, platform, key)
    driver.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
    assert wait_until(lambda: lang_of(driver) == language, 10)


def log_in_in_chinese(driver: Any, platform: Platform, key: str) -> None:
    log_in_speaking(driver, platform, key, "zh-CN")


def test_the_whole_story_through_the_forms_in_chinese(browser: Any, platform: Platform) -> None:
    """An admin creates a scenario and its key, the scenario asks for access from the dataset
    page, an approver narrows and approves, the scenario subscribes, an admin revokes the grant and
    the scenario's subscription page says delivery stopped: every step in Chinese, on the forms."""
    scenario_id = "street-view-zh"
    try:
        log_in_in_chinese(browser, platform, platform.admin_key)
        browser.find_element(By.LINK_TEXT, "应用场景").click()
        for name, value in {
            "scenario-id": scenario_id,
            "scenario-name": "街道检查结果",
            "scenario-organisation": "普陀区街道办事处",
            "scenario-contact": "street@putuo.example.cn",
        }.items():
            browser.find_element(By.ID, name).send_keys(value)
        screenshot(browser, "form-scenario-create-zh-CN")
        browser.find_element(By.ID, "create-scenario").click()
        assert wait_until(lambda: browser.current_url.endswith(f"/console/scenarios/{scenario_id}"), 10)
        browser.find_element(By.ID, "key-name").send_keys("试点")
        browser.find_element(By.ID, "issue-key").click()
        assert "不会再次显示" in browser.find_element(By.ID, "key-warning").text
        key = browser.find_element(By.ID, "issued-key").text
        screenshot(browser, "form-key-issued-zh-CN")
        platform.wait_for_key(key)

        log_in_in_chinese(browser, platform, key)
        browser.get(f"{platform.base}/console/datasets/market.inspections")
        for name in ("inspection_id", "district", "result", "inspector_phone"):
            browser.find_element(By.ID, f"request-field-{name}").click()
        browser.find_element(By.ID, "request-purpose").send_keys("向居民公开所在街道商铺的检查结果")
        Select(browser.find_element(By.ID, "request-purpose-category")).select_by_value("public_service")
        duration = browser.find_element(By.ID, "request-duration")
        duration.clear()
        duration.send_keys("60")
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "request-form"))
        screenshot(browser, "form-access-request-zh-CN")
        browser.find_element(By.ID, "request").click()
        assert wait_until(lambda: "/console/access-requests/" in browser.current_url, 10), browser.current_url
        request_id = browser.current_url.rsplit("/", 1)[-1]
        assert browser.find_elements(By.ID, "withdraw-form"), "a pending request of its own can be withdrawn"

        log_in_in_chinese(browser, platform, platform.keys[APPROVER])
        browser.get(f"{platform.base}/console/access-requests/{request_id}")
        browser.find_element(By.ID, "field-inspector_phone").click()  # narrowed: not needed
        Select(browser.find_element(By.ID, "mask-district")).select_by_value("hash")
        browser.find_element(By.ID, "approve-reason").send_keys("用途明确，电话号码不必提供")
        browser.find_element(By.ID, "approve").click()
        assert wait_until(lambda: "/console/grants/" in browser.current_url, 10), browser.current_url
        grant_path = browser.current_url
        Select(browser.find_element(By.ID, "narrow-mask-result")).select_by_value("redact")
        browser.find_element(By.ID, "narrow-reason").send_keys("检查结果只需知道是否合格")
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "narrow-form"))
        screenshot(browser, "form-grant-narrow-zh-CN")
        browser.find_element(By.ID, "narrow").click()
        assert wait_until(lambda: "result 脱敏：遮蔽" in text_of(browser, "grant-fields"), 10)
        assert "inspector_phone" not in browser.find_element(By.ID, "grant-fields").text
        screenshot(browser, "form-grant-narrowed-zh-CN")

        log_in_in_chinese(browser, platform, key)

        assert wait_until(lambda: subscribed(browser, platform, scenario_id, "market.inspections"), 20), (
            "the grant did not reach feeds"
        )
        subscription_path = browser.current_url
        assert browser.find_element(By.ID, "delivery").text == "当前正在投递记录。"
        screenshot(browser, "form-subscription-zh-CN")

        log_in_in_chinese(browser, platform, platform.admin_key)
        browser.get(grant_path)
        browser.find_element(By.ID, "revoke-reason").send_keys("试点结束")
        browser.find_element(By.ID, "revoke").click()
        assert wait_until(lambda: text_of(browser, "grant-status") == "已吊销", 10)
        screenshot(browser, "form-grant-revoked-zh-CN")

        log_in_in_chinese(browser, platform, key)

        def stopped() -> bool:
            browser.get(subscription_path)
            return "当前未投递任何记录：已吊销" in browser.find_element(By.ID, "delivery").text

        assert wait_until(stopped, 15), browser.find_element(By.ID, "delivery").text
        screenshot(browser, "form-subscription-stopped-zh-CN")
    finally:
        browser.delete_cookie("citybase_lang")


def test_the_whole_story_through_the_forms_in_english(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    """A department registers a dataset through the form (a refused contract first, each problem
    at its line; then the file; then its next version, confirmed after the diff), the scenario asks
    for it, an approver narrows and approves and narrows the grant again on a phone, the scenario
    subscribes, the grant is revoked (by an admin: the role table gives revocation to approvers and
    admins, not to operators), the operator finds the revocation on the audit trail and the
    scenario's subscription page says delivery stopped: every step in English, on the forms."""
    dataset_id = "market.street-checks"
    first = renamed_contract("market.inspections", dataset_id, "market-supervision")
    try:
        log_in_speaking(browser, platform, platform.keys[PUBLISHER], "en")
        browser.find_element(By.LINK_TEXT, "Catalog").click()
        browser.find_element(By.ID, "register-dataset").click()
        assert wait_until(lambda: browser.current_url.endswith("/console/contracts/new"), 10)
        browser.find_element(By.ID, "register-document").send_keys(
            f"id: {dataset_id}\nkind: DataContract\napiVersion: v3.1.0\nversion: 1.0.0\nschema: nothing\n"
        )
        screenshot(browser, "form-register-en")
        browser.find_element(By.ID, "register").click()
        assert wait_until(lambda: "line 5" in text_of(browser, "register-errors"), 10)
        assert "/schema" in browser.find_element(By.ID, "register-errors").text
        assert "schema: nothing" in browser.find_element(By.ID, "register-document").get_attribute("value")
        screenshot(browser, "form-register-refused-en")

        contract = tmp_path / f"{dataset_id}.yaml"
        contract.write_text(first, encoding="utf-8")
        browser.find_element(By.ID, "register-document").clear()
        browser.find_element(By.ID, "register-upload").send_keys(str(contract))
        browser.find_element(By.ID, "register").click()
        assert wait_until(lambda: browser.current_url.endswith(f"/console/datasets/{dataset_id}"), 10)
        screenshot(browser, "dataset-registered-en")

        def add_street(document: dict[str, Any]) -> None:
            document["schema"][0]["properties"].append(
                {"name": "street", "logicalType": "string", "description": "Street of the premises."}
            )

        contract.write_text(evolve_contract(first, "1.1.0", add_street), encoding="utf-8")
        browser.get(f"{platform.base}/console/contracts/new")
        browser.find_element(By.ID, "register-upload").send_keys(str(contract))
        browser.find_element(By.ID, "register").click()
        assert wait_until(lambda: "compatible (BACKWARD)" in text_of(browser, "register-verdict"), 10)
        assert "name: street" in browser.find_element(By.ID, "register-diff").text
        screenshot(browser, "form-register-preview-en")
        browser.find_element(By.ID, "confirm-register").click()
        assert wait_until(lambda: browser.current_url.endswith(f"/console/datasets/{dataset_id}"), 10)
        assert platform.ok("GET", f"/catalog/v1/datasets/{dataset_id}")["current_version"] == "1.1.0"

        log_in_speaking(browser, platform, platform.keys[SCENARIO], "en")
        browser.get(f"{platform.base}/console/datasets/{dataset_id}")
        for name in ("inspection_id", "district", "result", "street", "inspector_phone"):
            browser.find_element(By.ID, f"request-field-{name}").click()
        browser.find_element(By.ID, "request-purpose").send_keys(
            "Inspection results per street for residents"
        )
        Select(browser.find_element(By.ID, "request-purpose-category")).select_by_value("public_service")
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "request-form"))
        screenshot(browser, "form-access-request-en")
        browser.find_element(By.ID, "request").click()
        assert wait_until(lambda: "/console/access-requests/" in browser.current_url, 10), browser.current_url
        request_id = browser.current_url.rsplit("/", 1)[-1]

        log_in_speaking(browser, platform, platform.keys[APPROVER], "en")
        browser.find_element(By.LINK_TEXT, "Access requests").click()
        browser.find_element(By.LINK_TEXT, request_id).click()
        browser.find_element(By.ID, "field-inspector_phone").click()  # narrowed: not needed
        Select(browser.find_element(By.ID, "mask-street")).select_by_value("hash")
        browser.find_element(By.ID, "approve-reason").send_keys("Serves residents; the phone is not needed")
        screenshot(browser, "form-access-request-approve-en")
        browser.find_element(By.ID, "approve").click()
        assert wait_until(lambda: "/console/grants/" in browser.current_url, 10), browser.current_url
        grant_path = browser.current_url
        assert "street masked: hash" in browser.find_element(By.ID, "grant-fields").text

        # narrowed again on a phone: one block per field, a row filter, nothing wider than the screen
        browser.set_window_size(WIDTHS["phone"], 1000)
        browser.get(grant_path)
        Select(browser.find_element(By.ID, "narrow-mask-result")).select_by_value("redact")
        browser.find_element(By.ID, "narrow-row-filter").send_keys('district in ["Putuo", "Baoshan"]')
        browser.find_element(By.ID, "narrow-reason").send_keys("Two districts in the pilot")
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "narrow-form"))
        assert _overflow(browser) <= 0, f"wider than a phone: {_wider_than_the_window(browser)}"
        screenshot(browser, "form-grant-narrow-en-phone")
        browser.find_element(By.ID, "narrow").click()
        assert wait_until(lambda: "result masked: redact" in text_of(browser, "grant-fields"), 10)
        browser.set_window_size(1280, 1600)
        grant_id = grant_path.rsplit("/", 1)[-1]
        assert (
            platform.ok("GET", f"/catalog/v1/grants/{grant_id}")["row_filter"]
            == 'district in ["Putuo", "Baoshan"]'
        )
        screenshot(browser, "form-grant-narrowed-en")

        log_in_speaking(browser, platform, platform.keys[SCENARIO], "en")

        assert wait_until(lambda: subscribed(browser, platform, SCENARIO, dataset_id), 20), (
            "the grant did not reach feeds"
        )
        subscription_path = browser.current_url
        assert browser.find_element(By.ID, "delivery").text == "Delivers records now."
        screenshot(browser, "form-subscription-en")

        log_in_speaking(browser, platform, platform.admin_key, "en")
        browser.get(grant_path)
        browser.find_element(By.ID, "revoke-reason").send_keys("The pilot ended")
        browser.find_element(By.ID, "revoke").click()
        assert wait_until(lambda: text_of(browser, "grant-status") == "revoked", 10)
        screenshot(browser, "form-grant-revoked-en")

        log_in_speaking(browser, platform, platform.keys[OPERATOR], "en")
        browser.get(f"{platform.base}/console/audit?action=grant.revoke&resource_id={grant_id}")
        assert wait_until(lambda: grant_id in text_of(browser, "audit"), 10)
        screenshot(browser, "audit-grant-revoked-en")

        log_in_speaking(browser, platform, platform.keys[SCENARIO], "en")

        def stopped() -> bool:
            browser.get(subscription_path)
            return "Delivers nothing now: revoked." in text_of(browser, "delivery")

        assert wait_until(stopped, 15), text_of(browser, "delivery")
        screenshot(browser, "form-subscription-stopped-en")
    finally:
        browser.set_window_size(1280, 1600)
        browser.delete_cookie("citybase_lang")


FORM_PAGES = {
    "admin": ("/console/admin", None),
    "scenarios": ("/console/scenarios", None),
    "scenario-admin": (f"/console/scenarios/{SCENARIO}", None),
    "dataset-request": ("/console/datasets/market.inspections", SCENARIO),
    "department": ("/console/department", PUBLISHER),
    "register": ("/console/contracts/new", PUBLISHER),
}
"""Pages with forms, each as the role that sees its forms (None: the admin)."""


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_pages_with_forms_fit_a_phone(browser: Any, platform: Platform, language: str) -> None:
    overflowing: dict[str, int] = {}
    try:
        for name, (path, who) in FORM_PAGES.items():
            log_in(browser, platform, platform.keys[who] if who else platform.admin_key)
            browser.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
            browser.set_window_size(WIDTHS["phone"], 1000)
            browser.get(f"{platform.base}{path}")
            assert browser.find_elements(By.CSS_SELECTOR, "main form"), f"{name}: no form shown"
            screenshot(browser, f"form-{name}-{language}-phone")
            if (extra := _overflow(browser)) > 0:
                overflowing[name] = extra
            browser.set_window_size(1280, 1600)
    finally:
        browser.set_window_size(1280, 1600)
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than a phone (px): {overflowing}"


# --- the needs board -------------------------------------------------------------------------------


def _type_into(driver: Any, values: dict[str, str]) -> None:
    """Type each value into its field. A field found on a page that a navigation still under way
    then replaces is stale: it is found again on the page that replaced it, not a failure."""
    for element_id, value in values.items():

        def typed(element_id: str = element_id, value: str = value) -> bool:
            try:
                driver.find_element(By.ID, element_id).send_keys(value)
            except StaleElementReferenceException:
                return False
            return True

        assert wait_until(typed, 10), f"{element_id} stayed stale"


def test_from_a_residents_post_to_a_committed_need_through_the_console(
    browser: Any, platform: Platform
) -> None:
    # A resident, without an account, from the login page.
    browser.delete_all_cookies()
    browser.get(f"{platform.base}/console/login")
    browser.find_element(By.ID, "resident-link").click()
    assert browser.current_url.endswith("/console/needs/residents")
    _type_into(
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
    _type_into(
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
    _type_into(browser, {"join-purpose": "Tell residents which pharmacies passed"})
    browser.find_element(By.ID, "join").click()
    assert wait_until(lambda: OTHER_SCENARIO in text_of(browser, "requesters"), 15)
    browser.find_element(By.ID, "comments-body").send_keys("Weekly would already help.")
    browser.find_element(By.ID, "comment").click()
    assert wait_until(lambda: "Weekly would already help." in text_of(browser, "thread"), 15)

    # The market regulator answers: a commitment with a date.
    log_in(browser, platform, platform.keys[PUBLISHER])
    browser.get(need_url)
    due = date.today() + timedelta(days=30)
    browser.execute_script(
        "arguments[0].value = arguments[1]", browser.find_element(By.ID, "commit-commit_by"), due.isoformat()
    )
    browser.find_element(By.ID, "commit-dataset_id").send_keys("market.pharmacy-inspections")
    browser.find_element(By.ID, "commit").click()
    assert wait_until(lambda: "committed" in text_of(browser, "h1", By.TAG_NAME), 10)
    assert wait_until(lambda: due.isoformat() in text_of(browser, "answer"), 15)
    assert wait_until(lambda: "need.commit" in text_of(browser, "history"), 15)
    screenshot(browser, "need-committed")
    browser.get(f"{platform.base}/console/needs?status=committed")
    assert wait_until(lambda: "Inspection results of pharmacies" in text_of(browser, "needs"), 15)
    screenshot(browser, "needs-board")

    # An operator: the moderation queue, the resident's need accepted, the candidate needs.
    platform.ok("GET", "/catalog/v1/datasets", params={"q": "noise levels 13812345678"})
    log_in(browser, platform, platform.keys[OPERATOR])
    browser.get(f"{platform.base}/console/needs")
    browser.find_element(By.ID, "moderation-queue").click()
    assert wait_until(lambda: "Which pharmacies are open at night" in text_of(browser, "needs"), 15)
    screenshot(browser, "needs-moderation-queue")
    browser.get(f"{platform.base}/console/needs/{resident_need}")
    browser.find_element(By.ID, "accept").click()
    assert wait_until(lambda: "open" in text_of(browser, "h1", By.TAG_NAME), 10)
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


# --- the scenario programme: the public opportunity list, proposals side by side, stages ---------
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
def programme_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console-programme"),
        served=True,
        key_name="console",
        prepare_platform=_programme,
    ) as running:
        yield running


def _language(driver: Any, language: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#language a[hreflang="{language}"]').click()
    assert wait_until(lambda: lang_of(driver) == language, 5)


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
    browser: Any,
    programme_platform: Platform,
    language: str,
) -> None:
    browser.get(f"{programme_platform.base}/console/login")
    browser.delete_all_cookies()
    browser.get(f"{programme_platform.base}/console/opportunity-lists")
    assert "/console/login" not in browser.current_url  # no key needed
    _language(browser, language)
    heading = {"zh-CN": "机会清单", "en": "Opportunity lists"}[language]
    assert browser.find_element(By.TAG_NAME, "h1").text == heading
    assert OPENING_TITLE in browser.find_element(By.ID, "list-q1-2027").text
    overflowing = _fits(
        browser, f"{programme_platform.base}/console/opportunity-lists", f"opportunity-lists-{language}"
    )
    browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window (px): {overflowing}"


def test_the_owner_compares_proposals_side_by_side_and_the_scenario_page_shows_its_stages(
    browser: Any,
    programme_platform: Platform,
) -> None:
    log_in(browser, programme_platform, programme_platform.keys[APPROVER])
    proposals = (
        f"{programme_platform.base}/console/openings/{programme_platform.context['opening_id']}/proposals"
    )
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

    log_in(browser, programme_platform, programme_platform.keys[OPERATOR])
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
            log_in(browser, programme_platform, programme_platform.keys[OPERATOR])
            _language(browser, language)
            overflowing |= _fits(browser, scenario, f"scenario-stages-{language}")
            assert browser.find_element(By.ID, "scenario-stage").text == building
            log_in(browser, programme_platform, programme_platform.keys[APPROVER])
            _language(browser, language)
            overflowing |= _fits(browser, proposals, f"proposals-{language}")
            assert browser.find_element(By.ID, "opening-status").text == decided
    finally:
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window (px): {overflowing}"


# --- evaluation of a scenario and the city's indicators ------------------------------------------
EVALUATION_START, EVALUATION_END = this_month()
EVALUATION_PAGE = f"/console/scenarios/{SCENARIO}/evaluation"
OBJECTIVE = "Residents who found an open pharmacy"


@pytest.fixture(scope="module")
def evaluation_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console-evaluation"),
        served=True,
        key_name="console",
        environment=FAST,
        prepare_platform=evaluation_cast,
    ) as running:
        yield running


def _type_values(driver: Any, values: dict[str, str]) -> None:
    for element_id, value in values.items():
        field = driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value)


def test_a_scenario_sets_an_objective_and_reports_an_outcome_and_the_evaluator_judges_it(
    browser: Any, evaluation_platform: Platform, tmp_path: Path
) -> None:
    platform = evaluation_platform
    log_in(browser, platform, platform.keys[SCENARIO])
    browser.find_element(By.ID, "my-evaluation").click()
    assert wait_until(lambda: EVALUATION_PAGE in browser.current_url, 10), browser.current_url
    # the form starts on the period shown: this month, unless the scenario has objectives
    _type_values(
        browser,
        {
            "objective-title": OBJECTIVE,
            "objective-target": "50",
            "objective-kpi_name": "look-ups",
            "objective-kpi_unit": "per day",
        },
    )
    Select(browser.find_element(By.ID, "objective-kind")).select_by_value("outcome")
    screenshot(browser, "evaluation-objective-form")
    browser.find_element(By.ID, "set-objective").click()
    assert wait_until(lambda: OBJECTIVE in text_of(browser, "objectives"), 10), browser.page_source[:2000]

    Select(browser.find_element(By.ID, "outcome-objective_id")).select_by_visible_text(
        f"{OBJECTIVE} (look-ups, per day)"
    )
    _type_values(browser, {"outcome-value": "64", "outcome-note": "counted by the app"})
    browser.find_element(By.CSS_SELECTOR, "#outcome-grants input[type=checkbox]").click()
    browser.find_element(By.ID, "outcome-dataset-market.inspections").click()
    browser.find_element(By.ID, "report-outcome").click()
    assert wait_until(lambda: "counted by the app" in text_of(browser, "outcomes"), 10)
    screenshot(browser, "evaluation-scenario")
    assert not browser.find_elements(By.ID, "verdict-form")

    log_in(browser, platform, platform.keys[EVALUATOR])
    assert not browser.find_elements(By.LINK_TEXT, "Scenarios")
    browser.find_element(By.ID, "evaluations-link").click()
    screenshot(browser, "evaluations")
    browser.find_element(By.ID, f"evaluate-{SCENARIO}").click()

    def report_shown() -> bool:
        browser.refresh()
        return bool(browser.find_elements(By.ID, "verdict-form")) and OBJECTIVE in text_of(
            browser, "report-objectives"
        )

    assert wait_until(report_shown, 20), "quality shows no report of the objective"
    [objective] = [o for o in _objectives_of_the_scenario(platform) if o["title"] == OBJECTIVE]
    assert text_of(browser, f"status-{objective['id']}") == "met"  # 64 look-ups a day, at least 50
    Select(browser.find_element(By.ID, "verdict-result-choice")).select_by_value("meets")
    for reason in browser.find_elements(By.CSS_SELECTOR, "#verdict-form input[name^='reason.']"):
        reason.send_keys("Reported figure is above its target")
    screenshot(browser, "evaluation-verdict-form")
    browser.find_element(By.ID, "record-verdict").click()
    assert wait_until(lambda: text_of(browser, "verdict-result") == "meets its objectives", 10)
    screenshot(browser, "evaluation-verdict")

    # a report verifies against the trail up to the checkpoint it names: one taken after the verdict
    checkpoint = platform.ok("POST", "/catalog/v1/audit/checkpoints", platform.keys[OPERATOR])

    def saved() -> dict[str, Any] | None:
        answer = platform.ok(
            "GET",
            f"/quality/v1/scenarios/{SCENARIO}/evaluation",
            platform.keys[EVALUATOR],
            params={"period_start": EVALUATION_START, "period_end": EVALUATION_END, "format": "json"},
        )
        seen = answer.get("checkpoint") or {}
        return answer if seen.get("seq", -1) >= checkpoint["seq"] else None

    assert wait_until(lambda: saved() is not None, 15), "quality did not see the checkpoint"
    report = tmp_path / "report.json"
    report.write_text(json.dumps(saved()))
    browser.find_element(By.ID, "verify-upload").send_keys(str(report))
    browser.find_element(By.ID, "verify").click()
    assert wait_until(lambda: text_of(browser, "verification-result").startswith("verified"), 10), (
        browser.page_source[:3000]
    )
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "verification"))
    screenshot(browser, "evaluation-verified")


def _objectives_of_the_scenario(platform: Platform) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = platform.ok("GET", f"/catalog/v1/scenarios/{SCENARIO}/objectives")["items"]
    return items


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_html_evaluation_report_fits_a_desktop_and_a_phone(
    browser: Any, evaluation_platform: Platform, language: str, tmp_path: Path
) -> None:
    """Quality's self-contained HTML evaluation report, as an evaluator saves and opens it: in the
    language asked for, its objectives shown, no wider than the window, no word broken."""
    platform = evaluation_platform
    title = "Inspections delivered to the scenario"
    if title not in {o["title"] for o in _objectives_of_the_scenario(platform)}:
        platform.ok(
            "POST",
            f"/catalog/v1/scenarios/{SCENARIO}/objectives",
            platform.keys[SCENARIO],
            json={
                "title": title,
                "kind": "delivered-records",
                "datasets": [DATASET],
                "target": 10,
                "kpi": None,
                "period_start": EVALUATION_START,
                "period_end": EVALUATION_END,
            },
        )

    def report() -> str | None:
        answer = platform.call(
            "GET",
            f"/quality/v1/scenarios/{SCENARIO}/evaluation",
            platform.keys[EVALUATOR],
            params={"period_start": EVALUATION_START, "period_end": EVALUATION_END, "format": "html"},
            headers={"Accept-Language": language},
        )
        return answer.text if answer.status_code == 200 and title in answer.text else None

    assert wait_until(lambda: report() is not None, 20), "quality shows no report of the objective"
    page = tmp_path / "evaluation-report.html"
    page.write_text(report() or "", encoding="utf-8")
    overflowing = _saved_page_at_each_width(browser, page, language, "evaluation-report", showing=title)
    assert not overflowing, f"the evaluation report is wider than the window (px): {overflowing}"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_evaluation_pages_fit_a_desktop_and_a_phone_in_both_languages(
    browser: Any, evaluation_platform: Platform, language: str
) -> None:
    platform = evaluation_platform
    pages = {
        EVALUATOR: {
            "evaluations": "/console/evaluations",
            "evaluation": f"{EVALUATION_PAGE}?period_start={EVALUATION_START}&period_end={EVALUATION_END}",
            "indicators": "/console/indicators",
            "indicators-by-purpose": "/console/indicators?by=purpose&period=week",
        },
        SCENARIO: {"evaluation-own": EVALUATION_PAGE},
        OPERATOR: {"overview-indicators": "/console/overview"},
    }
    heading = {"zh-CN": "指标", "en": "Indicators"}[language]
    overflowing: dict[str, str] = {}
    broken: dict[str, list[str]] = {}
    try:
        for who, shown in pages.items():
            log_in_speaking(browser, platform, platform.keys[who], language)
            for name, path in shown.items():
                for width_name, width in WIDTHS.items():
                    browser.set_window_size(width, 1000)
                    browser.get(f"{platform.base}{path}")
                    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
                    if name == "indicators":
                        assert browser.find_element(By.TAG_NAME, "h1").text == heading
                        assert len(browser.find_elements(By.CSS_SELECTOR, "#indicators svg.chart")) == 6
                    screenshot(browser, f"{name}-{language}-{width_name}")
                    if _overflow(browser) > 0:
                        overflowing[f"{name} at {width} px"] = str(_wider_than_the_window(browser))
                    if width_name == "desktop" and (words := _broken_words(browser)):
                        broken[name] = words
    finally:
        browser.set_window_size(1280, 1600)
        browser.delete_cookie("citybase_lang")
    assert not overflowing, f"pages wider than the window: {overflowing}"
    assert not broken, f"words broken across lines at {WIDTHS['desktop']} px: {broken}"
