"""The disconnect watch closes its duplicate of the client's socket however it ends."""

from __future__ import annotations

import os
import socket

import gevent
import gevent.event
import pytest

from app.api import disconnect


@pytest.fixture
def pair(monkeypatch):
    monkeypatch.setattr(disconnect, "gevent_active", lambda: True)
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_a_watch_stopped_before_it_ran_closes_its_socket(pair):
    ours, _ = pair
    watch = disconnect.DisconnectWatch({"gunicorn.socket": ours}, lambda: None)
    fd = watch._raw.fileno()
    watch.stop()  # a request refused at once (429, 503): the watch never got to run
    assert closed(fd)


def test_a_watch_that_ran_closes_its_socket_when_stopped(pair):
    ours, _ = pair
    watch = disconnect.DisconnectWatch({"gunicorn.socket": ours}, lambda: None)
    fd = watch._raw.fileno()
    gevent.sleep(0)  # it waits for the client now
    watch.stop()
    gevent.sleep(0)
    assert closed(fd)


def test_a_client_that_leaves_is_told_once(pair):
    ours, theirs = pair
    gone = []
    watch = disconnect.DisconnectWatch({"gunicorn.socket": ours}, lambda: gone.append(1))
    theirs.close()
    gevent.sleep(0.01)
    watch.stop()
    assert gone == [1]


def test_a_look_at_the_connection_never_waits_for_the_client(pair, monkeypatch):
    """`gone()` peeks at once, where the socket module is gevent's (gunicorn's worker): gevent's recv
    would wait for the client's next bytes whatever MSG_DONTWAIT says."""
    monkeypatch.setattr(disconnect, "socket", gevent.socket)
    ours, theirs = pair
    watch = disconnect.DisconnectWatch({"gunicorn.socket": ours}, lambda: None)
    with gevent.Timeout(30):  # a guard against waiting for ever, not a measure
        assert watch.gone() is False
    theirs.close()
    assert watch.gone() is True
    watch.stop()
    assert watch.gone() is False  # a stopped watch has said what it saw


def test_a_readiness_with_nothing_behind_it_does_not_end_the_watch(pair, monkeypatch):
    """The event loop may report a duplicate descriptor readable when it is not (epoll keys events by
    descriptor and file): the watch then waits again, and still sees the client leave."""
    ours, theirs = pair
    spurious = [True]
    real_wait_read = gevent.socket.wait_read

    def wait_read(fileno, *args, **kwargs):
        if spurious and spurious.pop():
            return None  # ready, says the loop; nothing is there
        return real_wait_read(fileno, *args, **kwargs)

    monkeypatch.setattr(gevent.socket, "wait_read", wait_read)
    gone = gevent.event.Event()
    watch = disconnect.DisconnectWatch({"gunicorn.socket": ours}, gone.set)
    gevent.sleep(0)  # the spurious readiness comes and goes
    assert not spurious and not gone.is_set()
    theirs.close()
    assert gone.wait(30)  # told, though the first readiness said nothing
    watch.stop()


def test_a_default_socket_timeout_does_not_make_the_look_wait(pair):
    """A default timeout set by any library would make a plain socket's peek wait for it (blocking
    the event loop) and then end in TimeoutError: the client, still there, would read as gone."""
    socket.setdefaulttimeout(5.0)
    try:
        ours, _ = pair
        watch = disconnect.DisconnectWatch({"gunicorn.socket": ours}, lambda: None)
        assert watch.gone() is False
        watch.stop()
    finally:
        socket.setdefaulttimeout(None)
