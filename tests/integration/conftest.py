"""Real gunicorn (gevent worker) + real engine on the embedded model, over HTTP on loopback."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import EMBEDDED, Server, copy_without_chat_template, free_port, truncated_copy
from tests.otlp_receiver import Receiver

ALLOWED_ORIGIN = "https://app.example.com"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The embedded model, four slots, traces sent to a closed port (a collector that is down)."""
    tmp = tmp_path_factory.mktemp("server")
    with Server(
        tmp,
        LLM_MAX_CONCURRENT_REQUESTS="4",
        CORS_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    ).running() as srv:
        yield srv


@pytest.fixture(scope="session")
def one_slot_server(tmp_path_factory):
    """One generation slot and a three-second wait for it (a disconnect is seen at the next token)."""
    tmp = tmp_path_factory.mktemp("one-slot")
    with Server(tmp, LLM_MAX_CONCURRENT_REQUESTS="1", LLM_QUEUE_TIMEOUT_SECONDS="3").running() as srv:
        yield srv


@pytest.fixture(scope="session")
def no_queue_server(tmp_path_factory):
    """One generation slot and no queue: a request over the limit is refused at once."""
    tmp = tmp_path_factory.mktemp("no-queue")
    with Server(tmp, LLM_MAX_CONCURRENT_REQUESTS="1", LLM_MAX_QUEUED_REQUESTS="0").running() as srv:
        yield srv


@pytest.fixture(scope="module")
def receiver():
    """An OTLP/gRPC trace receiver on loopback."""
    otlp = Receiver().start()
    yield otlp
    otlp.stop()


NO_TEMPLATE = "local/no-template"
BROKEN = "local/broken"


@pytest.fixture(scope="session")
def models_server(tmp_path_factory):
    """The embedded model plus, under LLM_MODEL_PATH, one GGUF without a chat template and one that
    cannot load."""
    tmp = tmp_path_factory.mktemp("models")
    copy_without_chat_template(tmp / "models" / NO_TEMPLATE / "model.gguf")
    truncated_copy(tmp / "models" / BROKEN / "model.gguf")
    with Server(
        tmp,
        LLM_ALLOWED_MODELS=f"{EMBEDDED},{NO_TEMPLATE},{BROKEN}",
        LLM_MODEL_PATH=str(tmp / "models"),
    ).running(ready=(503,)) as srv:
        srv.wait_until_loaded()
        yield srv


EMBEDDING_MODEL = "local/tiny-embed"


@pytest.fixture(scope="session")
def apis_server(tmp_path_factory):
    """The embedded chat model and a tiny embedding model (Qwen3 architecture, built here)."""
    from tests.tiny_embedding import build_tiny_embedding

    tmp = tmp_path_factory.mktemp("apis")
    build_tiny_embedding(tmp / "models" / EMBEDDING_MODEL)
    with Server(
        tmp, LLM_ALLOWED_MODELS=f"{EMBEDDED},{EMBEDDING_MODEL}", LLM_MODEL_PATH=str(tmp / "models")
    ).running() as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is needed (make test installs it when run as root)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()
