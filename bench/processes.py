"""Server processes for benchmarks and the dashboard renderer: a free loopback port, a sure stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"


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
