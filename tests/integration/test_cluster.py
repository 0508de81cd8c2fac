"""`make cluster` for real: two replicas behind Debian's nginx with the shipped configuration. Streams
pass unbuffered, request ids link the logs, and under load a replica that drains (SIGTERM) or loses its
worker (kill -9) costs clients nothing but a 503 with Retry-After: never a 502, 504 or a hang."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from tests.helpers import EMBEDDED, ROOT, first_token, free_port, metric, samples, wait_for
from tests.integration.test_concurrency import LONG_ANSWER, chat_body
from tests.postgres import postgres

SHORT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "temperature": 0}


def replica(port: int) -> SimpleNamespace:
    return SimpleNamespace(url=f"http://127.0.0.1:{port}", verify=True)


@pytest.fixture(scope="module")
def database():
    """The replicas' shared store: a real PostgreSQL."""
    with postgres() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, database):
    directory = tmp_path_factory.mktemp("cluster")
    env = {
        "LLM_DATABASE_URL": database,
        "LLM_WORK_LEASE_SECONDS": "3",
        **os.environ,
        "LLM_CLUSTER_DIR": str(directory),
        "LLM_CLUSTER_PORT": str(free_port()),
        "LLM_CLUSTER_OLLAMA_PORT": str(free_port()),
        "LLM_INFERENCE_PORT": str(free_port()),
        "OTEL_SDK_DISABLED": "true",
        "LOG_FORMAT": "json",
    }
    env = {
        k: v for k, v in env.items() if k not in ("LLM_ALLOWED_MODELS", "LLM_API_KEYS", "LLM_API_KEYS_FILE")
    }
    output = (directory / "cluster.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "deploy/cluster.py"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    state_file = directory / "cluster.json"
    try:
        wait_for(lambda: process.poll() is not None or state_file.exists(), "the cluster", deadline=300)
        assert process.poll() is None, (directory / "cluster.out").read_text()
        state = json.loads(state_file.read_text())
        yield SimpleNamespace(
            url=f"http://127.0.0.1:{state['nginx']['port']}", state=state, process=process, dir=directory
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        output.close()
        assert code == 0


_clients: list = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _clients:
        _clients.pop().close()


def openai_client(url: str):
    import openai

    _clients.append(openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=2))
    return _clients[-1]


def running_on_replicas(cluster) -> float:
    return sum(metric(samples(replica(r["port"])), "llm_requests_running") for r in cluster.state["replicas"])


def test_a_stream_passes_through_nginx_token_by_token(cluster):
    with first_token(cluster.url, chat_body(LONG_ANSWER, 300)) as events:
        assert running_on_replicas(cluster) == 1  # the first token arrived while it still generates
        rest = list(events)
    assert rest[-1][0] == "done"


def test_ollamas_port_maps_onto_the_replicas_ollama_api(cluster):
    import ollama

    client = ollama.Client(host=f"http://127.0.0.1:{cluster.state['nginx']['ollama_port']}")
    try:
        assert "HuggingFaceTB/SmolLM2-135M-Instruct:latest" in [m.model for m in client.list().models]
        parts = list(
            client.chat(
                model="HuggingFaceTB/SmolLM2-135M-Instruct",
                messages=SHORT["messages"],
                options={"temperature": 0, "num_predict": 8},
                stream=True,
            )
        )
        assert parts[-1].done and parts[-1].eval_count == 8
    finally:
        client._client.close()
    assert requests.get(f"http://127.0.0.1:{cluster.state['nginx']['ollama_port']}/", timeout=10).text == (
        "Ollama is running"
    )


def test_request_ids_link_nginx_and_the_replica_and_the_client_address_is_not_spoofed(cluster):
    answer = requests.post(
        cluster.url + "/api/chat", json=SHORT, headers={"X-Forwarded-For": "203.0.113.7"}, timeout=120
    )
    assert answer.status_code == 200
    request_id = answer.headers["X-Request-ID"]
    access = Path(cluster.state["nginx"]["access_log"])
    wait_for(lambda: f"request_id={request_id}" in access.read_text(), "nginx's access line")

    def access_lines() -> list[dict]:
        return [
            json.loads(line)
            for r in cluster.state["replicas"]
            for line in Path(r["log"]).read_text().splitlines()
            if request_id in line and '"gunicorn.access"' in line
        ]

    lines = wait_for(access_lines, "the replica's access line")
    assert len(lines) == 1 and lines[0]["request_id"] == request_id
    assert lines[0]["remote_addr"] == "127.0.0.1"  # nginx states the address; the client's claim is dropped


def test_replicas_share_stored_responses_through_postgresql(cluster):
    first, second = (openai_client(replica(r["port"]).url) for r in cluster.state["replicas"])
    response = first.responses.create(model=EMBEDDED, input="Name a colour.", max_output_tokens=6)
    assert second.responses.retrieve(response.id).output_text == response.output_text
    follow = second.responses.create(
        model=EMBEDDED, input="Another one?", previous_response_id=response.id, max_output_tokens=6
    )
    assert follow.usage.input_tokens > response.usage.input_tokens  # the first replica's turn is the prompt
    through_nginx = openai_client(cluster.url)
    assert through_nginx.responses.retrieve(follow.id).previous_response_id == response.id


def test_a_batch_is_split_between_replicas_each_item_once_even_when_a_worker_is_killed(cluster, database):
    import sqlalchemy as sa

    api = openai_client(cluster.url)
    count = 30
    lines = [
        {
            "custom_id": f"r-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": EMBEDDED,
                "messages": [{"role": "user", "content": f"Say {n}."}],
                "max_tokens": 12,
            },
        }
        for n in range(count)
    ]
    upload = api.files.create(
        file=("r.jsonl", io.BytesIO("\n".join(map(json.dumps, lines)).encode())), purpose="batch"
    )
    batch = api.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(lambda: api.batches.retrieve(batch.id).request_counts.completed >= 4, "a few items done")
    second = cluster.state["replicas"][1]
    worker = int(Path(f"/proc/{second['pid']}/task/{second['pid']}/children").read_text().split()[0])
    os.kill(worker, signal.SIGKILL)  # the second replica's items in flight: taken back, run again
    batch = wait_for(
        lambda: (b := api.batches.retrieve(batch.id)).status == "completed" and b, "the batch", deadline=300
    )
    assert batch.request_counts.completed == count
    output = [json.loads(line) for line in api.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(line["custom_id"] for line in output) == sorted(f"r-{n}" for n in range(count))
    engine = sa.create_engine(sa.engine.make_url(database).set(drivername="postgresql+psycopg"))
    with engine.connect() as connection:
        ran_on = connection.execute(
            sa.text("SELECT lease_owner, count(*) FROM batch_items WHERE batch_id = :b GROUP BY lease_owner"),
            {"b": batch.id},
        ).all()
        size_type = connection.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_name = 'files' AND column_name = 'bytes'"
            )
        ).scalar()
    engine.dispose()
    assert size_type == "bigint"  # migrated at start (0002): a file may be over 2 GiB
    assert len(ran_on) == 2, ran_on  # both replicas claimed items of the one batch
    wait_for(
        lambda: requests.get(replica(second["port"]).url + "/health/ready", timeout=5).ok, "the new worker"
    )


def test_a_draining_replica_and_a_killed_worker_cost_clients_only_503s(cluster):
    first, second = cluster.state["replicas"]
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def client() -> None:
        with requests.Session() as session:
            for _ in range(400):
                if stop.is_set():
                    return
                try:
                    answer = session.post(cluster.url + "/api/chat", json=SHORT, timeout=120)
                except requests.RequestException as error:
                    results.append((time.monotonic(), -1, type(error).__name__))
                    continue
                retry_after = answer.headers.get("Retry-After")
                results.append((time.monotonic(), answer.status_code, retry_after))
                if answer.status_code == 503 and retry_after:
                    stop.wait(min(float(retry_after), 2))  # a well-behaved client honours it

    def ok_count() -> int:
        return sum(1 for _, status, _ in results if status == 200)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: ok_count() >= 16, "load flowing")
        os.kill(first["pid"], signal.SIGTERM)  # the first replica drains and exits
        drained_at = time.monotonic()
        wait_for(lambda: not Path(f"/proc/{first['pid']}").exists() or _zombie(first["pid"]), "the drain")
        drained = time.monotonic() - drained_at
        before = samples(replica(second["port"]))
        served = ok_count()
        wait_for(lambda: ok_count() >= served + 16, "load on the surviving replica")
        moved = delta_requests(replica(second["port"]), before)
        worker = int(Path(f"/proc/{second['pid']}/task/{second['pid']}/children").read_text().split()[0])
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: _ready(second["port"]), "a new worker ready", deadline=120)
        recovered = time.monotonic() - killed_at
        served = ok_count()
        wait_for(lambda: ok_count() >= served + 8, "load after the new worker")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 503}, statuses
    assert all(retry is not None for _, status, retry in results if status == 503)
    assert moved >= 16  # the survivor took the load
    print(
        f"\n{len(results)} requests through nginx: {dict(statuses)}; after SIGTERM of one replica the "
        f"other served {moved:.0f}; a killed worker was replaced and ready in {recovered:.1f}s "
        f"(the drained replica exited {drained:.1f}s after SIGTERM)"
    )


def delta_requests(server, before: dict) -> float:
    after = samples(server)
    return metric(after, "llm_requests_total", outcome="success") - metric(
        before, "llm_requests_total", outcome="success"
    )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_shipped_configuration_passes_nginx_t(tmp_path):
    from deploy.cluster import NGINX_MAIN, OLLAMA_SITE, SITE, render_site

    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    (tmp_path / "site.conf").write_text(render_site(SITE.read_text(), free_port(), tmp_path / "access.log"))
    ollama_site = render_site(OLLAMA_SITE.read_text(), free_port(), tmp_path / "access.log")
    (tmp_path / "ollama-site.conf").write_text(ollama_site)  # the optional Ollama port, checked too
    shipped = SITE.parent / "llm-inference-api.upstreams"
    (tmp_path / "llm-inference-api.upstreams").write_text(shipped.read_text())
    (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(dir=tmp_path))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
