"""Server processes for benchmarks and the dashboard renderer: a free loopback port, a sure stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

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
