"""Stored and background Responses, Files and Batches on the real server, through the official
`openai` client: every call, key isolation, bad input, and the lowest lane."""

from __future__ import annotations

import io
import json

import openai
import pytest
import requests

from tests.helpers import EMBEDDED, Server, samples, wait_for

KEY_A, KEY_B = "store-key-a-0123456789", "store-key-b-0123456789"
GREEDY = {"temperature": 0}
FINISHED = ("completed", "failed", "expired", "cancelled")


@pytest.fixture(scope="module")
def store_server(tmp_path_factory):
    """Two keys, two slots (background work may hold one), a 1 MiB file limit."""
    tmp = tmp_path_factory.mktemp("store")
    with Server(
        tmp,
        LLM_API_KEYS=f"{KEY_A},{KEY_B}",
        LLM_MAX_CONCURRENT_REQUESTS="2",
        LLM_MAX_FILE_MB="1",
        LLM_WORK_LEASE_SECONDS="3",
    ).running() as srv:
        yield srv


@pytest.fixture(scope="module")
def client_a(store_server):
    with openai.OpenAI(base_url=store_server.url + "/v1", api_key=KEY_A, max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def client_b(store_server):
    with openai.OpenAI(base_url=store_server.url + "/v1", api_key=KEY_B, max_retries=0) as client:
        yield client


def jsonl(lines: list) -> io.BytesIO:
    return io.BytesIO(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode()
    )


def chat_line(custom_id: str, content: str, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": EMBEDDED,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 4,
            **body,
        },
    }


def finished_batch(client, batch_id: str, deadline: float = 300):
    return wait_for(
        lambda: (b := client.batches.retrieve(batch_id)).status in FINISHED and b,
        f"batch {batch_id} to finish",
        deadline=deadline,
        interval=0.2,
    )


def output_lines(client, file_id: str) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


# -- Responses ------------------------------------------------------------------------------------
def test_a_stored_response_is_retrieved_listed_continued_and_deleted(client_a):
    first = client_a.responses.create(model=EMBEDDED, input="Name a fruit.", max_output_tokens=8, **GREEDY)
    assert first.store is True
    again = client_a.responses.retrieve(first.id)
    assert again.id == first.id and again.output_text == first.output_text and again.status == first.status
    items = client_a.responses.input_items.list(first.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "Name a fruit."

    follow = dict(model=EMBEDDED, input="And a vegetable?", previous_response_id=first.id)
    counted = client_a.responses.input_tokens.count(**follow)
    second = client_a.responses.create(**follow, max_output_tokens=8, **GREEDY)
    assert second.previous_response_id == first.id
    # the earlier turns are the prompt: more input than the new message alone, as counted beforehand
    assert second.usage.input_tokens == counted.input_tokens > first.usage.input_tokens

    client_a.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client_a.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client_a.responses.create(**follow)  # its predecessor is gone


def test_input_items_paginate(client_a):
    turns = [{"role": "user", "content": f"Line {n}."} for n in range(5)]
    response = client_a.responses.create(model=EMBEDDED, input=turns, max_output_tokens=2)
    first = client_a.responses.input_items.list(response.id, limit=2, order="asc")
    assert [i.content[0].text for i in first.data] == ["Line 0.", "Line 1."] and first.has_more
    rest = client_a.responses.input_items.list(response.id, limit=10, order="asc", after=first.last_id)
    assert [i.content[0].text for i in rest.data] == ["Line 2.", "Line 3.", "Line 4."] and not rest.has_more
    newest = client_a.responses.input_items.list(response.id, limit=1)
    assert newest.data[0].content[0].text == "Line 4."


def test_a_background_response_runs_and_a_cancelled_one_frees_its_slot(store_server, client_a):
    queued = client_a.responses.create(model=EMBEDDED, input="Say yes.", background=True, max_output_tokens=6)
    assert queued.status == "queued" and queued.background is True
    done = wait_for(
        lambda: (r := client_a.responses.retrieve(queued.id)).status not in ("queued", "in_progress") and r,
        "the background response to finish",
        interval=0.1,
    )
    assert done.status in ("completed", "incomplete") and done.output_text and done.id == queued.id

    long = client_a.responses.create(
        model=EMBEDDED, input="Count to a thousand.", background=True, max_output_tokens=2000
    )
    wait_for(
        lambda: client_a.responses.retrieve(long.id).status == "in_progress", "it to start", interval=0.05
    )
    wait_for(lambda: samples(store_server).get(("llm_background_slots_in_use", ())) == 1, "its slot")
    cancelled = client_a.responses.cancel(long.id)
    assert cancelled.status == "cancelled"
    wait_for(lambda: samples(store_server).get(("llm_background_slots_in_use", ())) == 0, "the slot freed")
    assert client_a.responses.retrieve(long.id).status == "cancelled"
    with pytest.raises(openai.ConflictError):
        client_a.responses.cancel(done.id)  # finished: nothing to cancel
    foreground = client_a.responses.create(model=EMBEDDED, input="Hi", max_output_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client_a.responses.cancel(foreground.id)


def test_an_interactive_request_preempts_background_work_which_runs_again(store_server, client_a):
    job = client_a.responses.create(
        model=EMBEDDED, input="Write a long story.", background=True, max_output_tokens=120
    )
    wait_for(lambda: samples(store_server).get(("llm_background_slots_in_use", ())) == 1, "it to run")
    before = samples(store_server).get(("llm_work_preemptions_total", ()), 0)
    answer = client_a.chat.completions.create(
        model=EMBEDDED, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert answer.choices[0].message.content
    assert samples(store_server)[("llm_work_preemptions_total", ())] == before + 1
    done = wait_for(
        lambda: (r := client_a.responses.retrieve(job.id)).status not in ("queued", "in_progress") and r,
        "the preempted response to run again",
    )
    assert done.status in ("completed", "incomplete") and done.output_text


def test_background_and_store_rules(client_a):
    with pytest.raises(openai.UnprocessableEntityError) as error:
        client_a.responses.create(model=EMBEDDED, input="Hi", background=True, store=False)
    assert "background" in error.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        client_a.responses.create(model=EMBEDDED, input="Hi", background=True, stream=True)
    unstored = client_a.responses.create(model=EMBEDDED, input="Hi", store=False, max_output_tokens=2)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client_a.responses.retrieve(unstored.id)


# -- Files ----------------------------------------------------------------------------------------
def test_files_upload_list_retrieve_content_delete(client_a):
    data = b'{"a": 1}\n' * 1000
    uploaded = client_a.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    assert uploaded.bytes == len(data) and uploaded.purpose == "batch" and uploaded.filename == "input.jsonl"
    assert client_a.files.retrieve(uploaded.id).bytes == len(data)
    assert uploaded.id in [f.id for f in client_a.files.list().data]
    assert client_a.files.content(uploaded.id).content == data
    client_a.files.delete(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client_a.files.retrieve(uploaded.id)


def test_files_have_a_size_limit_and_a_purpose(store_server, client_a):
    with pytest.raises(openai.APIStatusError) as large:
        client_a.files.create(file=("big.jsonl", io.BytesIO(b"x" * (2 * 2**20 + 10))), purpose="batch")
    assert large.value.status_code == 413
    with pytest.raises(openai.UnprocessableEntityError) as purpose:
        client_a.files.create(file=("a.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")
    assert "purpose" in purpose.value.body["message"]
    # the limit is the file's, not the request's: a file just over 1 MiB is refused with nothing stored
    before = len(client_a.files.list().data)
    with pytest.raises(openai.APIStatusError) as over:
        client_a.files.create(file=("over.jsonl", io.BytesIO(b"y" * (2**20 + 100))), purpose="batch")
    assert over.value.status_code == 413 and "LLM_MAX_FILE_MB" in over.value.body["message"]
    assert len(client_a.files.list().data) == before


# -- Batches --------------------------------------------------------------------------------------
def test_a_batch_runs_each_item_once_and_a_bad_item_fails_alone(client_a):
    lines = [chat_line(f"item-{n}", f"Say {n}.") for n in range(6)]
    lines.insert(3, chat_line("bad-item", "Hi", max_tokens=-5))
    upload = client_a.files.create(file=("b.jsonl", jsonl(lines)), purpose="batch")
    batch = client_a.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "t"},
    )
    assert (
        batch.status == "in_progress" and batch.request_counts.total == 7 and batch.metadata == {"job": "t"}
    )
    batch = finished_batch(client_a, batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (6, 1)
    outputs = output_lines(client_a, batch.output_file_id)
    assert sorted(o["custom_id"] for o in outputs) == sorted(f"item-{n}" for n in range(6))
    for line in outputs:
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["response"]["body"]["object"] == "chat.completion"
    (failed,) = output_lines(client_a, batch.error_file_id)
    assert failed["custom_id"] == "bad-item" and failed["response"]["status_code"] == 422
    assert "max_tokens" in failed["response"]["body"]["error"]["message"]
    assert batch.id in [b.id for b in client_a.batches.list().data]


@pytest.mark.parametrize(
    ("endpoint", "body", "kind"),
    [
        ("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 4}, "text_completion"),
        ("/v1/responses", {"input": "Say hi.", "max_output_tokens": 4}, "response"),
    ],
)
def test_a_batch_runs_on_each_generation_endpoint(client_a, endpoint, body, kind):
    lines = [
        {"custom_id": f"{kind}-{n}", "method": "POST", "url": endpoint, "body": {"model": EMBEDDED, **body}}
        for n in range(2)
    ]
    upload = client_a.files.create(file=("e.jsonl", jsonl(lines)), purpose="batch")
    batch = client_a.batches.create(input_file_id=upload.id, endpoint=endpoint, completion_window="24h")
    batch = finished_batch(client_a, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 2, batch
    outputs = output_lines(client_a, batch.output_file_id)
    assert sorted(o["custom_id"] for o in outputs) == [f"{kind}-0", f"{kind}-1"]
    assert {o["response"]["body"]["object"] for o in outputs} == {kind}


def test_a_bad_input_file_fails_the_batch_naming_its_lines(client_a):
    lines = [
        chat_line("one", "Hi"),
        "{not json",
        chat_line("one", "Hi"),  # the same custom_id again
        {**chat_line("three", "Hi"), "url": "/v1/embeddings"},
        {**chat_line("four", "Hi"), "method": "GET"},
    ]
    upload = client_a.files.create(file=("bad.jsonl", jsonl(lines)), purpose="batch")
    batch = client_a.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed" and batch.failed_at
    assert [error.line for error in batch.errors.data] == [2, 3, 4, 5]
    assert "custom_id" in batch.errors.data[1].message and "url" in batch.errors.data[2].message
    assert batch.request_counts.total == 0


def test_batch_refusals(client_a, client_b):
    with pytest.raises(openai.NotFoundError):
        client_a.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    upload = client_a.files.create(file=("x.jsonl", jsonl([chat_line("x", "Hi")])), purpose="batch")
    with pytest.raises(openai.NotFoundError):  # another key's file does not exist for it
        client_b.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.UnprocessableEntityError):
        client_a.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="1h"
        )
    with pytest.raises(openai.UnprocessableEntityError):
        client_a.batches.create(input_file_id=upload.id, endpoint="/v1/images", completion_window="24h")


def test_a_cancelled_batch_stops_and_keeps_what_finished(client_a):
    lines = [chat_line(f"c-{n}", f"Tell a story about {n}.", max_tokens=200) for n in range(20)]
    upload = client_a.files.create(file=("c.jsonl", jsonl(lines)), purpose="batch")
    batch = client_a.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(lambda: client_a.batches.retrieve(batch.id).request_counts.completed >= 1, "one item done")
    cancelling = client_a.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = finished_batch(client_a, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    done = output_lines(client_a, batch.output_file_id)
    assert 1 <= len(done) == batch.request_counts.completed < 20
    with pytest.raises(openai.ConflictError):
        client_a.batches.cancel(batch.id)


def test_objects_belong_to_their_key(client_a, client_b, store_server):
    response = client_a.responses.create(model=EMBEDDED, input="Hi", max_output_tokens=2)
    upload = client_a.files.create(file=("k.jsonl", jsonl([chat_line("k", "Hi")])), purpose="batch")
    batch = client_a.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    for call in (
        lambda: client_b.responses.retrieve(response.id),
        lambda: client_b.responses.input_items.list(response.id),
        lambda: client_b.responses.delete(response.id),
        lambda: client_b.responses.create(model=EMBEDDED, input="Hi", previous_response_id=response.id),
        lambda: client_b.files.retrieve(upload.id),
        lambda: client_b.files.content(upload.id),
        lambda: client_b.files.delete(upload.id),
        lambda: client_b.batches.retrieve(batch.id),
        lambda: client_b.batches.cancel(batch.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert upload.id not in [f.id for f in client_b.files.list().data]
    assert batch.id not in [b.id for b in client_b.batches.list().data]
    assert client_a.responses.retrieve(response.id).id == response.id  # still there for its owner
    unauthenticated = requests.get(f"{store_server.url}/v1/files/{upload.id}", timeout=10)
    assert unauthenticated.status_code == 401


def test_a_thousand_tiny_items_give_a_thousand_distinct_outputs(client_a):
    lines = [
        {
            "custom_id": f"tiny-{n}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": EMBEDDED, "prompt": f"{n}", "max_tokens": 1},
        }
        for n in range(1000)
    ]
    upload = client_a.files.create(file=("tiny.jsonl", jsonl(lines)), purpose="batch")
    batch = client_a.batches.create(
        input_file_id=upload.id, endpoint="/v1/completions", completion_window="24h"
    )
    batch = finished_batch(client_a, batch.id, deadline=600)
    assert batch.status == "completed" and batch.request_counts.completed == 1000
    outputs = output_lines(client_a, batch.output_file_id)
    assert len(outputs) == 1000 and {o["custom_id"] for o in outputs} == {f"tiny-{n}" for n in range(1000)}
    assert len({o["id"] for o in outputs}) == 1000
    assert all(o["response"]["body"]["object"] == "text_completion" for o in outputs)
