"""Start-up configuration, HTTPS and CORS on the real gunicorn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
import trustme

from tests.helpers import ROOT, Server, server_env
from tests.integration.conftest import ALLOWED_ORIGIN


def start_error_lines(tmp_path, **overrides: str) -> list[str]:
    """Start gunicorn with `overrides`; it must exit non-zero; return its non-blank stderr lines."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    result = subprocess.run(
        [gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=server_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"LLM_ALLOWED_MODELS": ""}, "LLM_ALLOWED_MODELS"),
        ({"LLM_DEFAULT_TEMPERATURE": "3"}, "LLM_DEFAULT_TEMPERATURE='3'"),
        ({"LLM_INFERENCE_PORT": "abc"}, "LLM_INFERENCE_PORT='abc'"),
        ({"SERVER_SSL_ENABLED": "true"}, "TLS_SERVER_CERT_PATH"),
    ],
)
def test_bad_configuration_stops_the_start_with_one_line(tmp_path, overrides, variable):
    lines = start_error_lines(tmp_path, **overrides)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"configuration error: {variable}")


def test_a_bad_catalog_stops_the_start_naming_file_entry_and_reason(tmp_path):
    catalog = tmp_path / "models.yaml"
    catalog.write_text("models:\n  acme/m:\n    in_situ_quant: Q9\n")
    lines = start_error_lines(tmp_path, LLM_MODELS_FILE=str(catalog))
    assert len(lines) == 1, lines
    prefix = f"configuration error: LLM_MODELS_FILE: {catalog}: entry 'acme/m': in_situ_quant: Must be one of"
    assert lines[0].startswith(prefix) and "Q4K" in lines[0]


def test_https_with_a_certificate_the_test_makes(tmp_path):
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_path))
    certificate.private_key_pem.write_to_path(str(key_path))
    authority.cert_pem.write_to_path(str(ca_path))
    server = Server(
        tmp_path,
        SERVER_SSL_ENABLED="true",
        TLS_SERVER_CERT_PATH=str(cert_path),
        TLS_SERVER_KEY_PATH=str(key_path),
    )
    server.verify = str(ca_path)
    with server.running():
        assert server.url.startswith("https://")
        body = {"prompt": "Hi", "max_tokens": 3, "temperature": 0}
        response = requests.post(server.url + "/api/generate", json=body, verify=str(ca_path), timeout=120)
        assert response.status_code == 200 and response.json()["usage"]["completion_tokens"] > 0
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/health/live", timeout=5)  # not trusted without the test CA


def test_cors_preflight_allows_the_configured_origin_only(server):
    def preflight(origin: str) -> requests.Response:
        return requests.options(
            server.url + "/api/chat",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            timeout=5,
        )

    allowed = preflight(ALLOWED_ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "content-type" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in preflight("https://evil.example").headers
