"""The console speaks Chinese or English: the browser's language, a switch on every page, a cookie."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.deps import COOKIE, LANG_COOKIE

ME = {"id": "city-ops", "kind": "operator", "name": "City Ops", "department_id": None}
DATASETS = {"items": [], "next_cursor": None}


def _platform(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/catalog/v1/me":
        return httpx.Response(200, json=ME)
    if request.url.path == "/catalog/v1/domains":
        return httpx.Response(200, json=[])
    if request.url.path == "/catalog/v1/datasets":
        return httpx.Response(200, json=DATASETS)
    return httpx.Response(404, json={"title": "Not found", "detail": f"no {request.url.path}"})


def console(*, logged_in: bool = True) -> TestClient:
    client = TestClient(create_app(transport=httpx.MockTransport(_platform)))
    if logged_in:
        client.cookies.set(COOKIE, "cbk_00000000_key")
    return client


def test_a_browser_that_asks_for_chinese_gets_chinese_pages() -> None:
    with console() as client:
        page = client.get("/datasets", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text
    assert page.headers["content-language"] == "zh-CN"
    assert "<h1>数据目录</h1>" in page.text
    assert "没有匹配的数据集。" in page.text
    assert "运维人员" in page.text  # the caller's kind, as a label
    assert "Catalog" not in page.text


def test_english_is_the_default_and_the_answer_to_an_english_browser() -> None:
    with console() as client:
        plain = client.get("/datasets")
        english = client.get("/datasets", headers={"Accept-Language": "en-GB"})
    for page in (plain, english):
        assert '<html lang="en">' in page.text
        assert "<h1>Catalog</h1>" in page.text
        assert "数据目录" not in page.text


def test_the_switch_on_every_page_remembers_the_choice() -> None:
    with console() as client:
        page = client.get("/datasets", headers={"Accept-Language": "en"})
        assert 'href="/lang/zh-CN?next=/datasets"' in page.text
        switched = client.get("/lang/zh-CN", params={"next": "/datasets"}, follow_redirects=False)
        assert switched.status_code == 303
        assert switched.headers["location"] == "/datasets"
        assert f"{LANG_COOKIE}=zh-CN" in switched.headers["set-cookie"]
        # the cookie wins over the browser's language from then on
        again = client.get("/datasets", headers={"Accept-Language": "en"})
        assert "<h1>数据目录</h1>" in again.text
        # and ?lang= over both, for a link that must open in one language
        english = client.get("/datasets", params={"lang": "en"})
        assert "<h1>Catalog</h1>" in english.text


def test_the_switch_never_redirects_off_the_console_and_ignores_unknown_languages() -> None:
    with console() as client:
        away = client.get("/lang/en", params={"next": "https://evil.example/"}, follow_redirects=False)
        unknown = client.get("/lang/xx", params={"next": "/datasets"}, follow_redirects=False)
    assert away.headers["location"] == "/"
    assert unknown.status_code == 303
    assert "set-cookie" not in unknown.headers


def test_the_login_page_and_its_errors_speak_the_browsers_language() -> None:
    with console(logged_in=False) as client:
        form = client.get("/login", headers={"Accept-Language": "zh-CN"})
        refused = client.post("/login", data={"key": ""}, headers={"Accept-Language": "zh-CN"})
    assert "粘贴您的 citybase API 密钥" in form.text
    assert refused.status_code == 401
    assert "请输入 API 密钥。" in refused.text


def test_an_error_page_speaks_chinese_too() -> None:
    with console() as client:
        page = client.get("/overview", headers={"Accept-Language": "zh-CN"})
    # the operator overview calls services the stand-in does not serve: a page, never a 500
    assert page.status_code < 500 or "服务" in page.text
    with console() as client:
        missing = client.get("/datasets/x.y", headers={"Accept-Language": "zh-CN"})
    assert missing.status_code == 404
    assert "<h1>未找到</h1>" in missing.text
