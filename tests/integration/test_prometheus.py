"""The alert rules under promtool's unit tests, and a real Prometheus (Debian's package) scraping the
real server: the `llm_*` series a dashboard and the alerts query are there."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from tests.helpers import EMBEDDED, ROOT, free_port, wait_for

RULES = ROOT / "deploy" / "prometheus"


def program(name: str) -> str:
    found = shutil.which(name)
    assert found, f"Debian's prometheus package is needed for {name} (make test installs it as root)"
    return found


def test_every_alert_rule_passes_its_promtool_unit_tests():
    checked = subprocess.run(
        [program("promtool"), "test", "rules", "alerts.test.yaml"], cwd=RULES, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@pytest.fixture
def prometheus(server, tmp_path):
    port = free_port()
    target = server.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{RULES / 'alerts.yaml'}]\n"
        "scrape_configs:\n"
        f"  - job_name: llm\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                program("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def query(prometheus: str, promql: str) -> list[dict]:
    try:
        answer = requests.get(prometheus + "/api/v1/query", params={"query": promql}, timeout=5)
    except requests.ConnectionError:
        return []  # starting
    return answer.json()["data"]["result"] if answer.status_code == 200 else []


def test_a_real_prometheus_scrapes_the_llm_series(server, prometheus):
    body = {"prompt": "Say hi.", "max_tokens": 4, "temperature": 0}
    assert requests.post(server.url + "/api/generate", json=body, timeout=120).status_code == 200
    loaded = wait_for(lambda: query(prometheus, "llm_model_loaded"), "a scrape", deadline=60)
    assert [(r["metric"]["model"], r["value"][1]) for r in loaded] == [(EMBEDDED, "1")]
    success = wait_for(
        lambda: query(prometheus, 'sum by (model) (llm_requests_total{outcome="success"})'), "the counter"
    )
    assert success[0]["metric"] == {"model": EMBEDDED} and float(success[0]["value"][1]) >= 1
    assert query(prometheus, "llm_max_concurrent_requests")[0]["value"][1] == "4"
    rules = requests.get(prometheus + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert {rule["name"] for group in rules for rule in group["rules"]} == {
        "LlmReplicaNotReady",
        "LlmServerErrors",
        "LlmOverloaded",
        "LlmSlowFirstToken",
        "LlmQueueSaturated",
    }
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"])
