"""The /v1 objects llm-comply does not judge (completions, their chunks, embeddings, models), validated
against the schemas of the OpenAI specification bundled with the pinned llm-comply package."""

from __future__ import annotations

import importlib.resources
import json

import pytest
import requests
from llm_comply.schema import SpecLoader

from tests.helpers import EMBEDDED
from tests.integration.conftest import EMBEDDING_MODEL

# llm-comply's validator resolves the spec's references with jsonschema's older resolver.
pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def spec() -> SpecLoader:
    return SpecLoader(str(importlib.resources.files("llm_comply") / "specs" / "openai_chat.json"))


def test_a_completion_and_its_chunks_are_complete(apis_server, spec):
    body = {"model": EMBEDDED, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}
    answer = requests.post(apis_server.url + "/v1/completions", json=body, timeout=120)
    assert answer.status_code == 200 and spec.validate(answer.json(), "CreateCompletionResponse") == []
    streamed = requests.post(
        apis_server.url + "/v1/completions", json={**body, "stream": True}, timeout=120, stream=True
    )
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in streamed.iter_lines(decode_unicode=True)
        if line.startswith("data: {")
    ]
    assert chunks and all(spec.validate(c, "CreateCompletionResponse") == [] for c in chunks), chunks


def test_embeddings_and_models_are_complete(apis_server, spec):
    answer = requests.post(
        apis_server.url + "/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": ["a", "b"]}, timeout=120
    )
    assert answer.status_code == 200 and spec.validate(answer.json(), "CreateEmbeddingResponse") == []
    models = requests.get(apis_server.url + "/v1/models", timeout=30).json()
    assert spec.validate(models, "ListModelsResponse") == [] and len(models["data"]) == 2
    one = requests.get(apis_server.url + f"/v1/models/{EMBEDDED}", timeout=30)
    assert one.status_code == 200 and spec.validate(one.json(), "Model") == []
