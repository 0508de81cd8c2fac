"""Server processes for benchmarks and the dashboard renderer: a free loopback port, a sure stop, our
server as shipped (gunicorn) or any other command, and the wait until it answers."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.settings import EMBEDDED_MODEL_ID

HOST = "127.0.0.1"  # loopback only
ROOT = Path(__file__).resolve().parent.parent
MODEL = EMBEDDED_MODEL_ID  # the model every benchmark serves
OURS = "ours"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to the whole process group.

    The process must have been started with `start_new_session=True`.
    """
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@dataclass(frozen=True)
class Server:
    """A running server: which kind, where, its process and its log."""

    kind: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def wait_ready(self, path: str, deadline: float) -> float:
        """Poll GET `path` until 200; return the seconds it took."""
        return wait_ready(self.process, self.port, path, self.log_path, deadline, self.kind)


@contextmanager
def spawn(
    kind: str, command: list[str], env: dict[str, str], log_path: Path, grace: float = 15
) -> Iterator[Server]:
    """Start a server on a free loopback port (`{port}` in the command and env); always stopped."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    env = {key: value.replace("{port}", str(port)) for key, value in env.items()}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield Server(kind, port, process, log_path)
        finally:
            stop(process, grace)


def ours(
    log_path: Path, extra_env: dict[str, str] | None = None, grace: float = 15
) -> AbstractContextManager[Server]:
    """The real server, as shipped: `gunicorn -c gunicorn.conf.py wsgi:app` (one gevent worker) serving
    the embedded model on a free loopback port, with `extra_env` on top; always stopped."""
    env = {
        **os.environ,
        "LLM_ALLOWED_MODELS": MODEL,
        "LLM_INFERENCE_HOSTNAME": HOST,
        "LLM_INFERENCE_PORT": "{port}",
        "LOG_FORMAT": "pretty",
        **(extra_env or {}),
    }
    command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
    return spawn(OURS, command, env, log_path, grace)


def wait_ready(
    process: subprocess.Popen,
    port: int,
    path: str,
    log_path: Path,
    deadline: float,
    label: str = "the server",
) -> float:
    """Poll GET `path` on loopback until 200; return the seconds it took. Fails if the process exits."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited with {process.returncode}; see {log_path}")
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass  # not listening yet
        finally:
            connection.close()
        time.sleep(0.25)  # polling interval while the server starts
    raise TimeoutError(f"{label}: {path} not 200 within {deadline:g}s; see {log_path}")
