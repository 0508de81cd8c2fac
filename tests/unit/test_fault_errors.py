"""Engine faults as clients see them: every fault's status, code and error type in each API family,
the wording that depends on the family, and the layering (the engine never imports the API's errors)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from app.engine import faults
from app.engine.entries import CHAT, EMBEDDING
from app.error_shapes import ANTHROPIC, NATIVE, OLLAMA, OPENAI
from app.fault_errors import GENERIC_FAILURE, api_error, fault_error

SLOTS = dict(limit=2, waiting=3, position=4, estimated_wait=7.25, retry_after=8, timeout=30.0, max_waiting=3)

# (fault, native status, code); the families' statuses and types follow from these
CASES = [
    (faults.ContextTooLong(900, 512, exact=False), 400, "context_length_exceeded"),
    (faults.ContextTooLong(900, 512, index=2), 400, "context_length_exceeded"),
    (faults.EmptyInput(1), 400, "bad_request"),
    (faults.UnknownTokenId(70000, 49152, index=0), 400, "bad_request"),
    (faults.UnknownTokenId(70000, 49152), 422, "validation_error"),
    (faults.GrammarRefused("m", "response_format", "grammar: bad regex"), 400, "bad_request"),
    (faults.GrammarRefused("m", None, "grammar: bad regex"), 500, "engine_error"),
    (faults.WrongModelKind("m", EMBEDDING, ["m"]), 400, "bad_request"),
    (faults.WrongModelKind("m", CHAT, []), 400, "bad_request"),
    (faults.NoChatTemplate("m", generating=True), 400, "chat_template_missing"),
    (faults.NoChatTemplate("m", generating=False), 400, "chat_template_missing"),
    (faults.TemplateRefused("Conversation roles must alternate"), 400, "bad_request"),
    (faults.RawCannotStream(), 400, "bad_request"),
    (faults.EngineBusy(), 503, "engine_error"),
    (faults.EngineFailed("m", "index out of bounds"), 500, "engine_error"),
    (faults.EngineFailed("m", None), 500, "engine_error"),
    (faults.ModelNotAllowed("x", ["a", "b"]), 404, "model_not_found"),
    (
        faults.ModelNotFound("x", "Model 'x' was not found; looked in: here", looked_in=["here"]),
        404,
        "model_not_found",
    ),
    (faults.DownloadFailed("org/x", "main", "the public hub", "connection refused"), 503, "model_not_ready"),
    (faults.ModelLoading("m", "loading"), 503, "model_not_ready"),
    (faults.ModelLoadFailed("m", "failed", "weights are corrupt"), 503, "model_not_ready"),
    (faults.NoRoomToLoad("m", 2), 503, "overloaded"),
    (faults.ModelBusy("m", "unloaded", "loaded", 2), 409, "conflict"),
    (faults.ModelBusy("m", "deleted", "loading"), 409, "conflict"),
    (faults.NoHubSource("m", faults.NoHubSource.OFFLINE), 409, "conflict"),
    (faults.NoHubSource("m", faults.NoHubSource.LOCAL, "/models/m.gguf"), 400, "bad_request"),
    (faults.KeyShareUsed("team", 2, retry_after=3), 429, "rate_limited"),
    (faults.SlotsBusy(faults.QUEUE_FULL, **SLOTS), 503, "overloaded"),
]
OPENAI_TYPE = {400: "invalid_request_error", 404: "invalid_request_error", 422: "invalid_request_error"}
OPENAI_TYPE |= {409: "invalid_request_error"}
OPENAI_TYPE |= {429: "rate_limit_error", 500: "server_error", 503: "server_error"}
ANTHROPIC_TYPE = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
ANTHROPIC_TYPE |= {409: "invalid_request_error"}
ANTHROPIC_TYPE |= {500: "api_error", 503: "overloaded_error"}


def shape(fault: faults.EngineFault, family) -> tuple[int, dict]:
    error = fault_error(fault, family)
    return family.shape(error.status, error.code, error.message, error.details)


@pytest.mark.parametrize(("fault", "status", "code"), CASES, ids=[type(case[0]).__name__ for case in CASES])
def test_each_fault_has_its_status_and_code_in_every_family(fault, status, code):
    native_status, native = shape(fault, NATIVE)
    assert native_status == status and native["error"]["code"] == code and native["error"]["status"] == status
    openai_status, openai = shape(fault, OPENAI)
    assert openai_status == status and openai["error"]["code"] == code
    assert openai["error"]["type"] == OPENAI_TYPE[status]
    invalid = 400 if status == 422 else status  # Anthropic and Ollama answer any invalid request 400
    anthropic_status, anthropic = shape(fault, ANTHROPIC)
    assert anthropic_status == invalid and anthropic["error"]["code"] == code
    assert anthropic["error"]["type"] == ANTHROPIC_TYPE[invalid]
    ollama_status, ollama = shape(fault, OLLAMA)
    assert ollama_status == invalid and ollama == {"error": fault_error(fault, OLLAMA).message}


def test_every_fault_is_worded():
    kinds = [k for _, k in inspect.getmembers(faults, inspect.isclass) if issubclass(k, faults.EngineFault)]
    worded = {type(fault) for fault, _, _ in CASES}
    assert set(kinds) - {faults.EngineFault} == worded


def test_an_embedding_model_asked_for_text_names_the_embed_route_of_the_family():
    fault = faults.WrongModelKind("m", EMBEDDING, ["m"])
    assert fault_error(fault, NATIVE).message.endswith("use POST /api/embed")
    assert fault_error(fault, OPENAI).message.endswith("use POST /v1/embeddings")
    assert fault_error(fault, ANTHROPIC).message.endswith("use POST /v1/embeddings")
    assert fault_error(fault, OLLAMA).message.endswith("use POST /ollama/api/embed")


def test_a_chat_model_asked_for_embeddings_names_the_models_that_can():
    error = fault_error(faults.WrongModelKind("chat", CHAT, ["emb-a", "emb-b"]), OPENAI)
    assert "models that can: emb-a, emb-b" in error.message
    assert error.details == {"model": "chat", "embedding_models": ["emb-a", "emb-b"]}


def test_context_too_long_carries_both_numbers_and_says_when_the_count_is_a_floor():
    error = fault_error(faults.ContextTooLong(900, 512, exact=False), NATIVE)
    assert error.message.startswith("The prompt is at least 900 tokens")
    assert error.details == {"prompt_tokens": 900, "context_length": 512}
    exact = fault_error(faults.ContextTooLong(900, 512), NATIVE)
    assert exact.message.startswith("The prompt is 900 tokens")
    embedding = fault_error(faults.ContextTooLong(900, 512, index=2), NATIVE)
    assert embedding.message.startswith("input[2] is 900 tokens") and embedding.details["index"] == 2


def test_a_refused_grammar_names_the_clients_field_or_is_the_servers_fault():
    client = fault_error(faults.GrammarRefused("m", "response_format", "regex: bad"), OPENAI)
    assert "(response_format)" in client.message and client.details == {"param": "response_format"}
    server = fault_error(faults.GrammarRefused("m", None, "regex: bad"), OPENAI)
    assert server.status == 500 and server.details == {"model": "m"}


def test_retry_after_travels_with_the_busy_faults():
    assert fault_error(faults.EngineBusy(), NATIVE).headers == {"Retry-After": "1"}
    assert fault_error(faults.ModelLoading("m", "loading"), NATIVE).headers == {"Retry-After": "2"}
    assert fault_error(faults.NoRoomToLoad("m", 2), NATIVE).headers == {"Retry-After": "2"}
    assert fault_error(faults.KeyShareUsed("k", 1, retry_after=5), NATIVE).headers == {"Retry-After": "5"}
    slots = fault_error(faults.SlotsBusy(faults.WAIT_TOO_LONG, **SLOTS), NATIVE)
    assert slots.headers == {"Retry-After": "8"} and slots.details["estimated_wait_seconds"] == 7.25
    assert "expected wait of 7.2s" in slots.message


def test_the_slots_say_why_they_refused():
    def message(why: str) -> str:
        return fault_error(faults.SlotsBusy(why, **SLOTS), NATIVE).message

    assert "LLM_MAX_QUEUED_REQUESTS" in message(faults.QUEUE_FULL)
    assert "none freed within 30s (LLM_QUEUE_TIMEOUT_SECONDS)" in message(faults.QUEUE_TIMEOUT)
    assert "would be number 4 in the queue; retry in 8s" in message(faults.WAIT_TOO_LONG)


def test_a_failure_outside_the_engines_table_is_a_500_that_says_little():
    assert api_error(ValueError("Already borrowed twice")).message.startswith("The engine failed: ")
    unexpected = api_error(KeyError("oops"))
    assert unexpected.status == 500 and unexpected.message == GENERIC_FAILURE
    assert fault_error(faults.EngineFailed("m", None), NATIVE).message == GENERIC_FAILURE


def test_the_engine_never_imports_the_apis_errors():
    engine = Path(__file__).resolve().parents[2] / "app" / "engine"
    for module in engine.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            assert not any(
                n == "app.errors" or n.startswith(("app.api", "app.fault_errors")) for n in names
            ), f"{module.name} imports {names}"
