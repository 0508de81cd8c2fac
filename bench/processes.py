"""Server processes for benchmarks and the dashboard renderer: a free loopback port, a sure stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


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


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, grace: float = 15) -> Iterator[subprocess.Popen]:
    """The real server (`gunicorn -c gunicorn.conf.py wsgi:app`) with `env`, its output in `log_path`;
    always stopped."""
    command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop(process, grace)


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
