"""Swagger UI in a real browser (Debian's chromium through Playwright): with API keys on, its
Authorize button sends the key, and "Try it out" gets 200 where it got 401 without it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.helpers import Server

KEY = "browser-key-0123456789"


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    with Server(tmp, LLM_API_KEYS=KEY).running() as srv:
        yield srv


@pytest.fixture(scope="module")
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


def try_listing(page: Page) -> str:
    """Run GET /api/llms from Swagger UI; the status it shows."""
    operation = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/api/llms"))
    if operation.locator(".btn-clear").is_visible():  # the last run's response goes first
        operation.locator(".btn-clear").click()
    else:
        operation.locator(".opblock-summary").click()
        operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    return status.inner_text().strip()


def test_the_authorize_button_sends_the_key(docs_server, page):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(docs_server.url + "/swagger-ui")
    page.locator(".btn.authorize").first.wait_for()
    assert try_listing(page).startswith("401")
    page.locator(".btn.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").first.fill(KEY)
    dialog.locator("button.authorize").first.click()
    dialog.locator("button.btn-done").first.click()
    assert try_listing(page).startswith("200")
    assert not [e for e in errors if "401" not in e], errors
