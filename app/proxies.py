"""The client's address behind a proxy: taken from X-Forwarded-For only when the peer is a proxy this
server trusts (LLM_TRUSTED_PROXIES), so a client cannot claim another address by sending the header."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks; ValueError names the one that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network") from None
    return tuple(networks)


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR becomes the nearest address in X-Forwarded-For that is not a
    trusted proxy, when the request came through one."""

    def __init__(self, app: Callable, networks: tuple[Network, ...]) -> None:
        self.app = app
        self.networks = networks

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        forwarded = [a.strip() for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded and self.trusted(peer):
            client = next((a for a in reversed(forwarded) if not self.trusted(a)), forwarded[0])
            environ["llm.proxy_addr"] = peer
            environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)
