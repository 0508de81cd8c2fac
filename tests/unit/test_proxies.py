"""LLM_TRUSTED_PROXIES: X-Forwarded-For is believed only from a trusted peer."""

from __future__ import annotations

import pytest

from app.proxies import TrustedProxies, parse_networks
from app.settings import Settings, SettingsError


def seen(networks: str, peer: str, forwarded: str | None) -> str:
    captured = {}

    def app(environ, start_response):
        captured["addr"] = environ["REMOTE_ADDR"]
        return []

    environ = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    TrustedProxies(app, parse_networks(networks.split(",")))(environ, None)
    return captured["addr"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.5", "203.0.113.7", "203.0.113.7"),  # from the trusted proxy
        ("198.51.100.9", "203.0.113.7", "198.51.100.9"),  # anyone else: the header is ignored
        ("10.0.0.5", "1.2.3.4, 203.0.113.7", "203.0.113.7"),  # the nearest untrusted address
        ("10.0.0.5", "203.0.113.7, 10.0.0.9", "203.0.113.7"),  # a chain of trusted proxies
        ("10.0.0.5", None, "10.0.0.5"),
        ("::1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_comes_from_a_trusted_proxy_only(peer, forwarded, client):
    assert seen("10.0.0.0/8,::1", peer, forwarded) == client


def test_the_setting_names_a_bad_network():
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"LLM_ALLOWED_MODELS": "m", "LLM_TRUSTED_PROXIES": "10.0.0.0/8,nope"})
    assert "LLM_TRUSTED_PROXIES" in str(error.value) and "nope" in str(error.value)
