"""Shared test helpers: a fake mistralrs runner, a gunicorn server process, SSE reading, model files."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import requests
from prometheus_client.parser import text_string_to_metric_families

from app.api import sse
from app.engine.catalog import embedded_model_file

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = "HuggingFaceTB/SmolLM2-135M-Instruct"


# -- a fake runner with the shape of mistralrs' --------------------------------------------------
def fake_chunk(text: str, finish: str | None = None, prompt_tokens: int = 3, completion: int = 0):
    usage = SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=completion) if finish else None
    delta = SimpleNamespace(content=text, tool_calls=None)
    choice = SimpleNamespace(delta=delta, finish_reason=finish, logprobs=None)
    return SimpleNamespace(choices=[choice], usage=usage)


class FakeRunner:
    """Streams `tokens`; or raises `error` at submission or at the first chunk (`error_at`)."""

    def __init__(self, tokens=("Hel", "lo", "!"), error: Exception | None = None, error_at="first"):
        self.tokens = list(tokens)
        self.error = error
        self.error_at = error_at
        self.submitted = 0
        self.closed = 0

    def send_chat_completion_request(self, request):
        self.submitted += 1
        if self.error is not None and self.error_at == "submit":
            raise self.error
        return self._stream()

    def _stream(self) -> Iterator:
        try:
            if self.error is not None and self.error_at == "first":
                raise self.error
            for i, token in enumerate(self.tokens):
                if self.error is not None and self.error_at == "middle" and i == 1:
                    raise self.error
                last = i == len(self.tokens) - 1
                yield fake_chunk(token, "length" if last else None, completion=len(self.tokens))
        finally:
            self.closed += 1

    def send_completion_request(self, request):
        choice = SimpleNamespace(text="".join(self.tokens), finish_reason="stop")
        usage = SimpleNamespace(prompt_tokens=2, completion_tokens=len(self.tokens))
        return SimpleNamespace(choices=[choice], usage=usage)

    def tokenize_text(self, text, add_special_tokens, enable_thinking):
        return text.split()

    def max_sequence_length(self):
        return 2048


# -- model files the tests make ------------------------------------------------------------------
def copy_without_chat_template(target: Path) -> Path:
    """The embedded GGUF with its `tokenizer.chat_template` key renamed: a model with no template."""
    data = bytearray(embedded_model_file().read_bytes())
    key = b"tokenizer.chat_template"
    at = data.find(struct.pack("<Q", len(key)) + key)
    assert at > 0, "the embedded GGUF has no chat template key"
    data[at + 8 : at + 8 + len(key)] = b"tokenizer.chat_templatx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    return target


def truncated_copy(target: Path, size: int = 50_000_000) -> Path:
    """The embedded GGUF cut short: the engine refuses to load it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with embedded_model_file().open("rb") as source:
        target.write_bytes(source.read(size))
    return target


# -- the real server -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tmp: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "TLS_", "SERVER_SSL"))}
    env.update(
        LLM_ALLOWED_MODELS=EMBEDDED,
        LLM_INFERENCE_HOSTNAME="127.0.0.1",
        LLM_INFERENCE_PORT=str(free_port()),
        LOG_FORMAT="pretty",
        LLM_DATA_DIR=str(tmp / "data"),
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
        NO_COLOR="1",
    )
    env.update(overrides)
    return env


class Server:
    """gunicorn with the gevent worker, as `make run` starts it, on a loopback port."""

    def __init__(self, tmp: Path, config: str = "gunicorn.conf.py", **overrides: str) -> None:
        self.config = config
        self.env = server_env(tmp, **overrides)
        self.log_path = tmp / f"server-{self.env['LLM_INFERENCE_PORT']}.log"
        scheme = "https" if self.env.get("SERVER_SSL_ENABLED") == "true" else "http"
        self.url = f"{scheme}://127.0.0.1:{self.env['LLM_INFERENCE_PORT']}"
        self.process: subprocess.Popen | None = None
        self.verify: str | bool = True

    def start(self) -> Server:
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [gunicorn, "-c", self.config, "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @contextlib.contextmanager
    def running(self, ready: tuple[int, ...] = (200,)) -> Iterator[Server]:
        """Started, answering /health/ready with one of `ready`, and stopped at the end."""
        self.start()
        try:
            self.wait_until("/health/ready", statuses=ready)
            yield self
        finally:
            self.stop()

    def wait_until(self, path: str, statuses: tuple[int, ...] = (200,), deadline: float = 120):
        """Poll `path` until it answers with one of `statuses`; fail if the server exits."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = requests.get(self.url + path, timeout=5, verify=self.verify)
                if response.status_code in statuses:
                    return response
            except (requests.ConnectionError, requests.Timeout):  # booting, or frozen by a model load
                pass
            time.sleep(0.1)  # polling interval while the worker boots, not synchronisation
        raise AssertionError(f"{path} never answered {statuses}:\n{self.log()}")

    def wait_until_loaded(self, deadline: float = 120) -> dict:
        """Poll /api/llms until no model is loading."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            listing = requests.get(self.url + "/api/llms", timeout=5, verify=self.verify).json()
            if all(m["state"] != "loading" for m in listing["models"]):
                return listing
            time.sleep(0.1)  # polling interval while models load, not synchronisation
        raise AssertionError(f"models still loading:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self, "_log"):
            self._log.close()


def read_events(response: requests.Response) -> list[tuple[str, dict]]:
    """Read a whole SSE response and parse its frames."""
    return sse.parse(response.content.decode())


def iter_events(response: requests.Response) -> Iterator[tuple[str, dict]]:
    """Parse SSE frames as they arrive."""
    block: list[str] = []
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if block:
                yield sse.parse("\n".join(block) + "\n\n")[0]
                block = []
        else:
            block.append(line)


# -- metrics, and waiting on them -------------------------------------------------------------------
def samples(server) -> dict[tuple[str, tuple], float]:
    text = requests.get(server.url + "/metrics", timeout=5, verify=server.verify).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def metric(found: dict, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (others, e.g. `key`, summed over)."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in found.items() if sample == name and wanted <= set(have))


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    return metric(after, name, **labels) - metric(before, name, **labels)


def wait_for(condition, what: str, deadline: float = 120, interval: float = 0.05):
    """Poll `condition()` until it returns something truthy (returned); fail after `deadline` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)  # polling interval for a condition, not synchronisation
    raise AssertionError(f"never happened: {what}")


def send_request(url: str, path: str, body: dict, headers: dict | None = None) -> socket.socket:
    """Send a JSON POST on a raw socket and return it unread (the test decides when to leave)."""
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    data = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    head += [f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    sock = socket.create_connection((parts.hostname, parts.port), timeout=600)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    return sock


def worker_pid(server) -> int:
    """The gunicorn worker's pid (the master's only child)."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def first_token(url: str, body: dict, path: str = "/api/chat/stream", **kwargs) -> Iterator[Iterator]:
    """A stream that has produced its first token (it holds a slot); yields its remaining events.
    The reader is kept for the whole block: a dropped reader closes the connection."""
    with requests.post(url + path, json=body, timeout=300, stream=True, **kwargs) as response:
        assert response.status_code == 200, response.text
        events = iter_events(response)
        name, _ = next(events)
        assert name == "token"
        yield events


def leave(server, client: socket.socket, running: int) -> float:
    """Close `client` once `running` generations hold slots; seconds until its slot is free."""
    wait_for(lambda: metric(samples(server), "llm_requests_running") == running, "the request running")
    left = time.monotonic()
    client.close()
    wait_for(lambda: metric(samples(server), "llm_requests_running") == running - 1, "the slot freed")
    return time.monotonic() - left
