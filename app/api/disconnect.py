"""Noticing a client that leaves while its request waits or generates, before any byte is written.

WSGI tells an application about a disconnect only when a write fails, so a request that is queued, in
prefill, or non-streaming would run on for nobody. Under gunicorn's gevent worker the connection's
socket is in the environ: a greenlet waits for it to become readable, and a read of nothing (the
client's FIN) or a reset means the client is gone.
"""

from __future__ import annotations

import _socket
import os
import socket
from collections.abc import Callable
from typing import Any

from app.engine.offload import gevent_active


class DisconnectWatch:
    """Calls `on_disconnect` once if the client closes its connection; `stop()` ends the watch."""

    def __init__(self, environ: dict, on_disconnect: Callable[[], None]) -> None:
        self._greenlet: Any = None
        client = environ.get("gunicorn.socket")
        if client is None or not gevent_active():
            return  # no socket to watch (tests without a server, other servers): writes still tell
        import gevent

        try:
            # A plain socket on a duplicate of the descriptor: peeking works under TLS too, and
            # nothing is read from the request's own socket object. The C socket, not gevent's:
            # gevent's recv waits for data where MSG_DONTWAIT asks it not to, which would make a
            # look at the connection (`gone`) wait for the client's next bytes.
            raw = _socket.socket(fileno=os.dup(client.fileno()))
            # Never blocking, whatever socket.setdefaulttimeout says: the descriptor is gevent's and
            # non-blocking already (the flag belongs to the connection, shared with the original).
            raw.setblocking(False)
        except OSError:
            return
        self._raw = raw
        self._greenlet = gevent.spawn(self._watch, raw, on_disconnect)

    @staticmethod
    def _peek(raw: _socket.socket) -> bool | None:
        """Look at the connection now: True when the client has closed it (a read of nothing, the
        client's FIN, or a reset), False when bytes are waiting, None when nothing is there yet."""
        try:
            return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return None
        except OSError:  # reset by the peer
            return True

    @classmethod
    def _watch(cls, raw: _socket.socket, on_disconnect: Callable[[], None]) -> None:
        from gevent.socket import wait_read

        try:
            # a readiness with nothing behind it (None) waits again
            while (gone := cls._peek(raw)) is None:
                wait_read(raw.fileno())
        except OSError:
            gone = True
        finally:
            raw.close()
        # Bytes waiting (a pipelined request, or TLS records) say nothing: the write will tell.
        if gone:
            on_disconnect()

    def gone(self) -> bool:
        """Whether the client has already closed its connection, looked at now: its FIN may be in
        before this watch's greenlet has run. False once the watch has ended (it said what it saw)."""
        if self._greenlet is None or self._raw.fileno() == -1:
            return False
        return self._peek(self._raw) is True

    def stop(self) -> None:
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is None:
            return
        greenlet.kill(block=False)
        if greenlet.dead:  # killed before it started: no finally of its own will close the socket
            self._raw.close()  # a watch that ran closes its socket itself, after its wait ended
