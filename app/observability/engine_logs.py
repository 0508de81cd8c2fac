"""The engine's own log lines (Rust `tracing` on stdout) re-emitted through Python logging."""

from __future__ import annotations

import logging
import os
import re
import sys

from app.engine.offload import gevent_active

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LINE = re.compile(r"^\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+([\w:]+):\s?(.*)$")
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}
logger = logging.getLogger("mistralrs")


def parse(line: str) -> tuple[int, str, str]:
    """(level, engine module, message) of one engine line; unknown shapes are INFO as they are."""
    text = _ANSI.sub("", line).rstrip("\n")
    match = _LINE.match(text)
    if match is None:
        return logging.INFO, "", text
    level, target, message = match.groups()
    return _LEVELS[level], target, message


def capture() -> None:
    """Point fd 1 at a pipe whose lines become `mistralrs` log records (call before loading)."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    os.dup2(write_fd, 1)
    os.close(write_fd)
    if gevent_active():
        import gevent
        from gevent.fileobject import FileObjectPosix

        gevent.spawn(_relay, FileObjectPosix(read_fd, "rb"))
    else:
        import threading

        threading.Thread(target=_relay, args=(os.fdopen(read_fd, "rb"),), daemon=True).start()


def _relay(pipe) -> None:
    for raw in pipe:
        line = raw.decode("utf-8", "replace")
        if not line.strip():
            continue
        level, target, message = parse(line)
        logger.log(level, message, extra={"engine_module": target})
