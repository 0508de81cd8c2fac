"""A key's share of the slots (max_concurrent) as the sessions see it: before a request at its share is
judged, the key's requests whose clients have already left are ended and their slots waited for; a
refusal names the requests that hold the share, so an operator can find them in the log."""

from __future__ import annotations

import logging
from typing import Any

from app.api.cuts import CANCELLED

logger = logging.getLogger(__name__)

# How long a request at its key's share waits for a request of the same key whose client has left to
# give its slot back (a stream ends at its next token; one at the prefill gate once it has the gate).
SETTLE_SECONDS = 5.0


def _same_key(session: Any) -> list[Any]:
    """The other interactive requests in flight of `session`'s key."""
    return [
        other
        for other in list(session.services.sessions)
        if other is not session and other.key_name == session.key_name and not other.background
    ]


def settle_departed(session: Any) -> None:
    """End the key's requests whose clients have already left, and wait for their slots. A client
    that drops a stream and sends its next request at once is then served whichever of its two
    packets the event loop reads first; requests whose clients are still there keep the share."""
    for other in _same_key(session):
        if other.cut is None and not other.client_gone():
            continue
        other.interrupt(CANCELLED)
        if not other.freed.wait(SETTLE_SECONDS):
            logger.warning("a request whose client left held its slot past %.0fs", SETTLE_SECONDS)


def holders(session: Any) -> tuple[str, ...]:
    """The request ids of the key's requests that hold or wait for its share."""
    return tuple(other.request_id for other in _same_key(session))
