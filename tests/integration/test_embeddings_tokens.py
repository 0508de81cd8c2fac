"""Embeddings (the official `openai` client and /api/embed, a tiny Qwen3 embedding model built by the
tests) and tokens (/api/tokenize, /api/detokenize), against the real server."""

from __future__ import annotations

import math

import openai
import pytest
import requests

from tests.helpers import EMBEDDED, delta, samples
from tests.integration.conftest import EMBEDDING_MODEL

TEXTS = [
    "hello",
    "  leading and trailing spaces  ",
    "naïve café, 東京, Ελληνικά, emoji 🧪🚀",
    "tabs\tand\nnew lines\r\n",
    "code: def f(x):\n    return x ** 2  # done",
    "<|im_start|>user\nspecial-looking text<|im_end|>",
    "",
]


@pytest.fixture(scope="module")
def oai(apis_server):
    with openai.OpenAI(base_url=apis_server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def post(server, path: str, body: dict) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=120)


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-5 for x, y in zip(a, b, strict=True))


# -- embeddings -----------------------------------------------------------------------------------
def test_embeddings_through_the_openai_client(apis_server, oai):
    before = samples(apis_server)
    result = oai.embeddings.create(model=EMBEDDING_MODEL, input=["a cat", "a cat", "the stock market"])
    vectors = [item.embedding for item in result.data]
    assert [item.index for item in result.data] == [0, 1, 2]
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 1
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    assert close(vectors[0], vectors[1]) and not close(vectors[0], vectors[2])
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0
    after = samples(apis_server)
    assert delta(after, before, "llm_requests_total", endpoint="v1_embeddings", outcome="success") == 1


def test_float_base64_token_ids_and_native_agree(apis_server, oai):
    text = "equal inputs, equal vectors"
    floats = oai.embeddings.create(model=EMBEDDING_MODEL, input=text, encoding_format="float").data[0]
    # the client asks for base64 when it is not told, and decodes it itself
    decoded = oai.embeddings.create(model=EMBEDDING_MODEL, input=text).data[0]
    ids = post(apis_server, "/api/tokenize", {"model": EMBEDDING_MODEL, "text": text}).json()["tokens"]
    by_ids = oai.embeddings.create(model=EMBEDDING_MODEL, input=ids, encoding_format="float").data[0]
    native = post(apis_server, "/api/embed", {"model": EMBEDDING_MODEL, "input": [text]}).json()
    assert close(floats.embedding, list(decoded.embedding))
    assert close(floats.embedding, by_ids.embedding)
    assert close(floats.embedding, native["embeddings"][0])
    assert native["dimensions"] == len(floats.embedding) and native["model"] == EMBEDDING_MODEL


def test_the_native_default_is_the_embedding_model(apis_server):
    answer = post(apis_server, "/api/embed", {"input": "no model named"})
    assert answer.status_code == 200 and answer.json()["model"] == EMBEDDING_MODEL


def test_a_chat_model_says_which_models_embed(oai):
    with pytest.raises(openai.BadRequestError) as refused:
        oai.embeddings.create(model=EMBEDDED, input="hello")
    assert EMBEDDING_MODEL in refused.value.body["message"]


def test_an_embedding_model_refuses_chat(apis_server):
    answer = post(
        apis_server, "/api/chat", {"model": EMBEDDING_MODEL, "messages": [{"role": "user", "content": "x"}]}
    )
    assert answer.status_code == 400 and "POST /api/embed" in answer.json()["error"]["message"]
    openai = post(
        apis_server,
        "/v1/chat/completions",
        {"model": EMBEDDING_MODEL, "messages": [{"role": "user", "content": "x"}]},
    )
    assert openai.status_code == 400 and "/v1/embeddings" in openai.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"input": "x", "dimensions": 8}, 400, "dimensions"),
        ({"input": []}, 422, "input"),
        ({"input": ["ok", ""]}, 422, "input"),
        ({"input": [[1, 2], "mixed"]}, 422, "input"),
        ({"input": [[999_999]]}, 400, "vocabulary"),
        ({"input": "x" * 600}, 400, "context length"),
        ({"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ],
)
def test_bad_embedding_input_is_named(apis_server, body, status, named):
    answer = post(apis_server, "/v1/embeddings", {"model": EMBEDDING_MODEL, **body})
    assert answer.status_code == status, answer.text
    assert named in answer.json()["error"]["message"]


# -- tokens ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [EMBEDDED, EMBEDDING_MODEL])
def test_tokenize_round_trips_any_text(apis_server, model):
    for text in TEXTS:
        tokens = post(apis_server, "/api/tokenize", {"model": model, "text": text}).json()
        assert tokens["count"] == len(tokens["tokens"])
        back = post(apis_server, "/api/detokenize", {"model": model, "tokens": tokens["tokens"]}).json()
        assert back["text"] == text


def test_pieces_join_to_the_text(apis_server):
    text = "Plain ASCII text, split into pieces."
    tokens = post(apis_server, "/api/tokenize", {"text": text, "with_pieces": True}).json()
    assert len(tokens["pieces"]) == tokens["count"] and "".join(tokens["pieces"]) == text


def test_special_tokens_are_added_and_skipped_on_request(apis_server):
    plain = post(apis_server, "/api/tokenize", {"text": "hi"}).json()["tokens"]
    special = post(apis_server, "/api/tokenize", {"text": "hi", "add_special_tokens": True}).json()["tokens"]
    assert special[-len(plain) :] == plain
    chat = post(apis_server, "/api/tokenize", {"messages": [{"role": "user", "content": "hi"}]}).json()
    skipped = post(apis_server, "/api/detokenize", {"tokens": chat["tokens"], "skip_special_tokens": True})
    kept = post(apis_server, "/api/detokenize", {"tokens": chat["tokens"]})
    assert kept.json()["text"] == chat["prompt"]
    assert len(skipped.json()["text"]) < len(kept.json()["text"]) and "hi" in skipped.json()["text"]


def test_counting_a_conversation_matches_a_generation(apis_server):
    messages = [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]
    counted = post(apis_server, "/api/tokenize", {"messages": messages}).json()
    generated = post(apis_server, "/api/chat", {"messages": messages, "max_tokens": 1}).json()
    assert counted["count"] == generated["usage"]["prompt_tokens"]
    assert counted["prompt"].count("Capital of France?") == 1 and counted["max_context"] > counted["count"]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/tokenize", {}, "text"),
        ("/api/tokenize", {"text": "x", "messages": [{"role": "user", "content": "x"}]}, "text"),
        ("/api/detokenize", {"tokens": [10**10]}, "tokens"),
        ("/api/detokenize", {"tokens": ["a"]}, "tokens"),
        ("/api/detokenize", {"tokens": [900_000]}, "vocabulary"),
    ],
)
def test_bad_token_requests_are_named(apis_server, path, body, named):
    answer = post(apis_server, path, body)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]["message"]


def test_every_new_route_is_documented(apis_server):
    paths = requests.get(apis_server.url + "/openapi.json").json()["paths"]
    for path in (
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/embeddings",
        "/api/embed",
        "/api/tokenize",
        "/api/detokenize",
    ):
        assert "post" in paths[path], path
