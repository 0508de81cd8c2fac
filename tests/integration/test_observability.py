"""Metrics, traces and logs of real generations through gunicorn."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.helpers import EMBEDDED, Server, delta, iter_events, read_events, samples
from tests.otlp_receiver import attributes

SERVICE = "llm-test-service"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def traced_server(tmp_path_factory, receiver):
    tmp = tmp_path_factory.mktemp("traced")
    with Server(
        tmp,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
        OTEL_BSP_SCHEDULE_DELAY="100",
        SERVICE_NAME=SERVICE,
        LOG_FORMAT="json",
    ).running() as srv:
        yield srv


def test_metrics_move_by_the_tokens_of_real_generations(server):
    before = samples(server)
    body = {"prompt": "Name three colours.", "temperature": 0, "max_tokens": 12}
    whole = requests.post(server.url + "/api/generate", json=body, timeout=300).json()
    events = read_events(
        requests.post(
            server.url + "/api/chat/stream",
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 7},
            timeout=300,
            stream=True,
        )
    )
    streamed = events[-1][1]["usage"]
    requests.post(server.url + "/api/generate", json={"prompt": "x", "temperature": 9}, timeout=30)
    requests.post(server.url + "/api/generate", json={"prompt": "x", "model": "client/chosen"}, timeout=30)
    after = samples(server)

    model = {"model": EMBEDDED}
    assert (
        delta(after, before, "llm_completion_tokens_total", **model)
        == whole["usage"]["completion_tokens"] + streamed["completion_tokens"]
    )
    assert (
        delta(after, before, "llm_prompt_tokens_total", **model)
        == whole["usage"]["prompt_tokens"] + streamed["prompt_tokens"]
    )
    assert (
        delta(after, before, "llm_requests_total", model=EMBEDDED, endpoint="generate", outcome="success")
        == 1
    )
    assert (
        delta(after, before, "llm_requests_total", model=EMBEDDED, endpoint="chat_stream", outcome="success")
        == 1
    )
    assert delta(after, before, "llm_time_to_first_token_seconds_count", **model) == 2
    assert delta(after, before, "llm_time_per_output_token_seconds_count", **model) == 2
    assert (
        delta(after, before, "llm_request_duration_seconds_count", model=EMBEDDED, endpoint="chat_stream")
        == 1
    )
    assert delta(after, before, "llm_queue_wait_seconds_count", endpoint="generate") == 1
    assert after[("llm_max_concurrent_requests", ())] == 4
    assert after[("llm_requests_running", ())] == 0
    assert after[("llm_model_loaded", (("model", EMBEDDED),))] == 1
    assert after[("llm_model_load_duration_seconds", (("model", EMBEDDED),))] > 0
    info = [key for key in after if key[0] == "llm_build_info"]
    assert dict(info[0][1])["device"] == requests.get(server.url + "/api/llms", timeout=5).json()["device"]
    assert delta(after, before, "flask_http_request_total", method="POST", status="422") == 1
    # refusals count too, and a client-chosen model name never becomes a label
    refused = delta(
        after, before, "llm_requests_total", model="unknown", endpoint="generate", outcome="client_error"
    )
    assert refused == 2
    assert not any(dict(labels).get("model") == "client/chosen" for _, labels in after)


def test_cancelled_and_rejected_requests_are_counted(one_slot_server):
    url = one_slot_server.url
    before = samples(one_slot_server)
    body = {
        "messages": [
            {"role": "user", "content": "Write a long, detailed essay about the history of computers."}
        ],
        "temperature": 0,
        "max_tokens": 300,
    }
    with requests.post(url + "/api/chat/stream", json=body, timeout=300, stream=True) as held:
        events = iter_events(held)  # keep it referenced: dropping it closes the connection
        assert next(events)[0] == "token"
        assert requests.post(url + "/api/generate", json={"prompt": "x"}, timeout=30).status_code == 503
    # served only once the abandoned stream gave its slot back (after recording it)
    assert (
        requests.post(url + "/api/generate", json={"prompt": "x", "max_tokens": 2}, timeout=300).status_code
        == 200
    )
    after = samples(one_slot_server)
    assert (
        delta(
            after, before, "llm_requests_total", model=EMBEDDED, endpoint="chat_stream", outcome="cancelled"
        )
        == 1
    )
    assert (
        delta(after, before, "llm_requests_total", model=EMBEDDED, endpoint="generate", outcome="rejected")
        == 1
    )


def test_spans_carry_genai_attributes_and_the_incoming_parent(traced_server, receiver):
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "X-Request-ID": "trace-test-1"}
    body = {"messages": [{"role": "user", "content": "Hello!"}], "temperature": 0, "max_tokens": 9}
    response = requests.post(traced_server.url + "/api/chat", json=body, headers=headers, timeout=300)
    usage = response.json()["usage"]

    def ours(spans):
        return [(service, s) for service, s in spans if s.trace_id.hex() == TRACE_ID]

    def both(spans):
        names = [span.name for _, span in ours(spans)]
        has_request = any(not name.startswith("chat ") for name in names)
        return ours(spans) if f"chat {EMBEDDED}" in names and has_request else []

    found = receiver.wait_for(both)
    by_name = {span.name: (service, span) for service, span in found}
    service, generation = by_name[f"chat {EMBEDDED}"]
    request_span = next(span for _, span in found if span.name != generation.name)
    assert service == SERVICE
    assert request_span.parent_span_id.hex() == PARENT_ID
    assert generation.parent_span_id == request_span.span_id
    attrs = attributes(generation.attributes)
    assert attrs["gen_ai.request.model"] == EMBEDDED
    assert attrs["gen_ai.request.max_tokens"] == 9
    assert attrs["gen_ai.request.temperature"] == 0
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == [response.json()["finish_reason"]]
    (first_token,) = [event for event in generation.events if event.name == "gen_ai.first_token"]
    assert generation.start_time_unix_nano < first_token.time_unix_nano <= generation.end_time_unix_nano


def test_a_stream_span_ends_with_the_stream(traced_server, receiver):
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    body = {"prompt": "Count to five.", "temperature": 0, "max_tokens": 11}
    events = read_events(
        requests.post(
            traced_server.url + "/api/generate/stream", json=body, headers=headers, timeout=300, stream=True
        )
    )
    done = events[-1][1]
    found = receiver.wait_for(
        lambda spans: [
            s for _, s in spans if s.trace_id.hex() == trace_id and s.name.startswith("text_completion")
        ]
    )
    attrs = attributes(found[0].attributes)
    assert attrs["gen_ai.usage.output_tokens"] == done["usage"]["completion_tokens"]


def test_a_request_refused_for_its_key_is_traced_too(traced_server, receiver):
    """A 403 (the admin routes are closed on a server without keys) raised before any view still
    has its request span, with its status."""
    trace_id = "5b8efff798038103d269b633813fc60c"
    headers = {"traceparent": f"00-{trace_id}-eee19b7ec3c1b174-01"}
    refused = requests.get(traced_server.url + "/api/admin/models", headers=headers, timeout=30)
    assert refused.status_code == 403
    found = receiver.wait_for(lambda spans: [s for _, s in spans if s.trace_id.hex() == trace_id])
    assert attributes(found[0].attributes)["http.status_code"] == 403
    assert "OpenTelemetry span missing" not in traced_server.log()


def test_json_log_lines_join_the_response_and_the_trace(traced_server, receiver):
    trace_id = "5bf92f3577b34da6a3ce929d0e0e4737"
    headers = {"traceparent": f"00-{trace_id}-{PARENT_ID}-01", "X-Request-ID": "log-join-1"}
    response = requests.post(
        traced_server.url + "/api/generate",
        json={"prompt": "Hi", "max_tokens": 3},
        headers=headers,
        timeout=300,
    )
    assert response.headers["X-Request-ID"] == "log-join-1"
    spans = receiver.wait_for(
        lambda spans: [
            s for _, s in spans if s.trace_id.hex() == trace_id and s.name.startswith("text_completion")
        ]
    )
    span_id = spans[0].span_id.hex()

    def lines_of_request():
        records = [
            json.loads(line) for line in traced_server.log_path.read_text().splitlines() if line.strip()
        ]
        return records, [r for r in records if r.get("request_id") == "log-join-1"]

    deadline = time.monotonic() + 30
    records, mine = lines_of_request()
    while not any(r["logger"] == "gunicorn.access" for r in mine) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the log file until the access line is flushed
        records, mine = lines_of_request()
    assert {"timestamp", "level", "logger", "message"} <= set(records[0])
    generation = next(r for r in mine if r["logger"] == "app.generation")
    access = next(r for r in mine if r["logger"] == "gunicorn.access")
    for record in (generation, access):
        assert record["trace_id"] == trace_id
        assert record["model"] == EMBEDDED
        assert record["prompt_tokens"] == response.json()["usage"]["prompt_tokens"]
        assert record["completion_tokens"] == response.json()["usage"]["completion_tokens"]
    assert generation["span_id"] == span_id
    assert access["status"] == 200 and access["duration_ms"] > 0
    assert any(r["logger"] == "mistralrs" for r in records)  # the engine's lines, in the same format
    assert not any(r.get("prompt") == "Hi" for r in records)  # prompts are not logged by default


def test_a_collector_that_is_down_does_not_fail_requests(server):
    # `server` exports to a closed loopback port
    latencies = []
    for _ in range(3):
        started = time.perf_counter()
        response = requests.post(
            server.url + "/api/generate", json={"prompt": "Hi", "max_tokens": 4, "temperature": 0}, timeout=60
        )
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    print(f"\nwith the collector down: {[round(x * 1000) for x in latencies]} ms")


def test_each_batch_item_has_a_span_linked_to_the_request_that_made_the_batch(traced_server, receiver):
    trace_id = "5cf92f3577b34da6a3ce929d0e0e4799"
    lines = [
        json.dumps(
            {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": EMBEDDED, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2},
            }
        )
        for custom_id in ("first", "second")
    ]
    upload = requests.post(
        traced_server.url + "/v1/files",
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", "\n".join(lines).encode())},
        timeout=60,
    )
    created = requests.post(
        traced_server.url + "/v1/batches",
        json={
            "input_file_id": upload.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers={"traceparent": f"00-{trace_id}-{PARENT_ID}-01"},
        timeout=60,
    )
    assert created.status_code == 200, created.text

    def items(spans):
        linked = [
            s
            for _, s in spans
            if s.name == "batch item" and any(k.trace_id.hex() == trace_id for k in s.links)
        ]
        return linked if len(linked) == 2 else []

    found = receiver.wait_for(items, timeout=300)
    assert sorted(attributes(s.attributes)["llm.batch.custom_id"] for s in found) == ["first", "second"]
    assert all(s.trace_id.hex() != trace_id for s in found)  # each item is a trace of its own, linked
    assert {attributes(s.attributes)["http.status_code"] for s in found} == {200}
