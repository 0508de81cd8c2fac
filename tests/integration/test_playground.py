"""The web playground at `/` in a real browser (Debian's chromium through Playwright) against the real
server on the embedded model: the model picker, a streamed answer with its stats, Stop cancelling the
generation on the server, the API-key flow, and the screenshot in docs/playground.png.

The model's words differ between CPUs: only that text arrives is asserted, never which."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from tests.helpers import EMBEDDED, ROOT, Server, metric, samples, wait_for

KEY = "playground-key-0123456789"
GENERATION_MS = 300_000  # a deadline for a whole answer on a busy CPU, not a timing assertion
QUIET = {"OTEL_SDK_DISABLED": "true"}  # no trace exporter retrying against a collector that is not there
STATS = re.compile(r"First token \d+(\.\d+)? m?s · \d+\.\d tokens/s · \d+ tokens")


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("playground"), **QUIET).running() as srv:
        yield srv


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("playground-keys"), LLM_API_KEYS=KEY, **QUIET).running() as srv:
        yield srv


class Problems:
    """What went wrong in a page: console errors, failed requests, answers >= 400."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} {r.failure}"))
        page.on("response", lambda r: self.failed.append(f"{r.url} {r.status}") if r.status >= 400 else None)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.problems = Problems(page)
    yield page
    context.close()


def open_playground(page: Page, server) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#model")).to_be_enabled()


def send(page: Page, text: str) -> Locator:
    """Type `text` and press Enter; the assistant bubble that answers it."""
    index = page.locator(".message.assistant").count()
    page.locator("#prompt").fill(text)
    page.locator("#prompt").press("Enter")
    return page.locator(".message.assistant").nth(index)


def ask(page: Page, text: str) -> Locator:
    """`send`, and wait for the answer to finish (its stats line appears once `done` arrives)."""
    answer = send(page, text)
    expect(answer.locator(".stats")).to_have_text(STATS, timeout=GENERATION_MS)
    expect(answer.locator(".content")).not_to_be_empty()
    expect(page.locator("#send")).to_be_visible()
    return answer


def settings(page: Page, max_tokens: int, system: str = "", temperature: float = 0.7) -> None:
    page.locator("#temperature").fill(str(temperature))
    page.locator("#max-tokens").fill(str(max_tokens))
    page.locator("#system").fill(system)


def test_the_page_loads_and_lists_the_model(open_server, page):
    open_playground(page, open_server)
    assert page.title() == "LLM Playground"
    options = page.locator("#model option")
    expect(options).to_have_count(1)
    assert options.first.get_attribute("value") == EMBEDDED
    expect(page.locator("#model")).to_have_value(EMBEDDED)
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#stop")).to_be_hidden()
    assert not page.problems.errors, page.problems.errors
    assert not page.problems.failed, page.problems.failed
    # served beside the API, yet no part of its document; model output never goes through innerHTML
    paths = requests.get(open_server.url + "/openapi.json", timeout=10).json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/playground")], paths
    assert requests.get(open_server.url + "/playground/missing.js", timeout=10).status_code == 404
    assert "innerHTML" not in (ROOT / "app/playground/playground.js").read_text()


def test_an_answer_streams_into_the_page_with_its_stats(open_server, page):
    open_playground(page, open_server)
    settings(page, max_tokens=40, system="You are a helpful assistant.", temperature=0.5)
    with page.expect_request("**/api/chat/stream") as sent:
        answer = ask(page, "Say hello in one short sentence.")
    body = sent.value.post_data_json
    assert body["model"] == EMBEDDED
    assert body["messages"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence."},
    ]
    assert (body["temperature"], body["max_tokens"]) == (0.5, 40)
    assert sent.value.headers.get("authorization") is None  # no key typed, none sent
    assert "error" not in (answer.get_attribute("class") or "")
    expect(answer.locator(".stats")).to_contain_text("finish: ")
    expect(page.locator(".message.user .content")).to_have_text("Say hello in one short sentence.")
    assert not page.problems.errors, page.problems.errors
    assert not page.problems.failed, page.problems.failed


def test_stop_cancels_the_generation_and_keeps_the_partial_answer(open_server, page):
    open_playground(page, open_server)
    settings(page, max_tokens=2000)
    before = metric(samples(open_server), "llm_requests_total", outcome="cancelled")
    answer = send(page, "Write a very long story about a dragon who learns to bake bread, in many chapters.")
    expect(answer.locator(".content")).not_to_be_empty(timeout=GENERATION_MS)
    expect(answer).to_have_class(re.compile(r"\bstreaming\b"))  # tokens show while generating
    page.locator("#stop").click()
    wait_for(
        lambda: metric(samples(open_server), "llm_requests_total", outcome="cancelled") > before,
        "the server counting the stopped generation as cancelled",
    )
    expect(answer).to_have_class(re.compile(r"\bstopped\b"))
    expect(answer.locator(".stats")).to_contain_text("Stopped")
    expect(answer.locator(".content")).not_to_be_empty()
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    assert not page.problems.errors, page.problems.errors


def test_with_api_keys_the_page_asks_for_one(keyed_server, page):
    assert requests.get(keyed_server.url + "/", timeout=10).status_code == 200
    assert requests.get(keyed_server.url + "/playground/playground.js", timeout=10).status_code == 200
    page.goto(keyed_server.url + "/")
    expect(page.locator("#notice")).to_contain_text("API key is needed")
    expect(page.locator("#api-key")).to_be_focused()
    expect(page.locator("#model")).to_be_disabled()

    page.locator("#api-key").fill(KEY)
    page.locator("#api-key").press("Enter")
    expect(page.locator("#model")).to_be_enabled()
    expect(page.locator("#model")).to_have_value(EMBEDDED)
    expect(page.locator("#notice")).to_be_hidden()
    settings(page, max_tokens=24)
    with page.expect_request("**/api/chat/stream") as sent:
        ask(page, "Hello!")
    assert sent.value.headers["authorization"] == f"Bearer {KEY}"

    page.reload()  # the key is kept for the session
    expect(page.locator("#model")).to_be_enabled()
    expect(page.locator("#api-key")).to_have_value(KEY)
    # only the first listing, without a key, was refused
    assert [f for f in page.problems.failed if not f.endswith("/api/llms 401")] == []
    assert not [e for e in page.problems.errors if "401" not in e], page.problems.errors


def test_a_conversation_screenshot(open_server, page):
    open_playground(page, open_server)
    settings(page, max_tokens=60, system="You are a friendly assistant. Answer briefly.", temperature=0.2)
    ask(page, "What is the capital of France?")
    with page.expect_request("**/api/chat/stream") as sent:
        ask(page, "Name three things to see there.")
    roles = [m["role"] for m in sent.value.post_data_json["messages"]]
    assert roles == ["system", "user", "assistant", "user"]  # the whole conversation goes each time
    page.locator("#prompt").blur()
    target = ROOT / "docs" / "playground.png"
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    assert not page.problems.errors, page.problems.errors
