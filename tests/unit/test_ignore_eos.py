"""`ignore_eos` is one sampling field for every shell that has it (native, OpenAI, Anthropic): it
reaches the engine's request; Ollama's options have no such option and refuse it by name."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.helpers import FakeRunner
from tests.unit.conftest import FAKE_MODEL

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def recorded(monkeypatch):
    """The engine's request classes replaced by a record of the keywords they are built with."""
    import mistralrs

    for name in ("ChatCompletionRequest", "CompletionRequest"):
        monkeypatch.setattr(mistralrs, name, lambda **fields: SimpleNamespace(**fields))


class RecordingRunner(FakeRunner):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def send_chat_completion_request(self, request):
        self.seen.append(request.ignore_eos)
        return super().send_chat_completion_request(request)

    def send_completion_request(self, request):  # a raw prompt (/v1/completions)
        self.seen.append(request.ignore_eos)
        return super().send_completion_request(request)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"messages": HI}),
        ("/api/generate", {"prompt": "Hi"}),
        ("/v1/chat/completions", {"model": FAKE_MODEL, "messages": HI}),
        ("/v1/completions", {"model": FAKE_MODEL, "prompt": "Hi"}),
        ("/v1/responses", {"model": FAKE_MODEL, "input": "Hi", "store": False}),
        ("/v1/messages", {"model": FAKE_MODEL, "messages": HI, "max_tokens": 8}),
    ],
)
def test_ignore_eos_reaches_the_engine_from_every_shell(make_app, path, body):
    runner = RecordingRunner()
    client = make_app(runner).test_client()
    assert client.post(path, json=body).status_code == 200
    assert client.post(path, json={**body, "ignore_eos": True}).status_code == 200
    assert runner.seen == [False, True]


def test_ollama_refuses_ignore_eos_by_name(make_app):
    client = make_app(RecordingRunner()).test_client()
    answer = client.post(
        "/ollama/api/chat",
        json={"model": FAKE_MODEL, "messages": HI, "stream": False, "options": {"ignore_eos": True}},
    )
    assert answer.status_code == 400 and "ignore_eos" in answer.json["error"]
