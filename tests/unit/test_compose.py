"""The compose stack's files (Docker cannot run here): every file it mounts exists, the services it
names are wired to each other, the GPU variant reserves a GPU, and both Dockerfiles are linted by
hadolint in `make lint`."""

from __future__ import annotations

import yaml

from tests.helpers import ROOT

COMPOSE = ROOT / "deploy" / "compose"


def load(name: str) -> dict:
    return yaml.safe_load((COMPOSE / name).read_text())


def test_every_mounted_file_exists_and_the_services_are_wired():
    stack = load("compose.yaml")
    services = stack["services"]
    assert set(services) == {"server", "nginx", "prometheus", "grafana", "otel-collector", "jaeger"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name}: {source}"
        for dependency in service.get("depends_on", []):
            assert dependency in services
    build = services["server"]["build"]
    assert (COMPOSE / build["context"] / build["dockerfile"]).exists()
    scrape = load("prometheus.yml")
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["server:8091"]
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yaml"]
    assert services["server"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    upstream = (COMPOSE / "llm-inference-api.upstreams").read_text()
    assert "server server:8091" in upstream
    seconds = int(services["server"]["stop_grace_period"].removesuffix("s"))
    assert seconds > 25  # over LLM_DRAIN_SECONDS


def test_the_gpu_variant_reserves_a_gpu_and_builds_the_cuda_image():
    server = load("compose.gpu.yaml")["services"]["server"]
    (device,) = server["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert (COMPOSE / server["build"]["context"] / server["build"]["dockerfile"]).exists()


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus():
    datasource = load("grafana/provisioning/datasources/prometheus.yaml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    grafana = load("compose.yaml")["services"]["grafana"]
    dashboard = next(v for v in grafana["volumes"] if "llm-inference-api.json" in v)
    assert (COMPOSE / dashboard.split(":")[0]).exists()


def test_the_store_is_a_volume_and_postgresql_is_an_override():
    stack = load("compose.yaml")
    assert "data:/data" in stack["services"]["server"]["volumes"] and "data" in stack["volumes"]
    override = load("compose.postgres.yaml")
    url = override["services"]["server"]["environment"]["LLM_DATABASE_URL"]
    database = override["services"]["postgres"]["environment"]
    assert url == (
        f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}@postgres:5432/{database['POSTGRES_DB']}"
    )
    assert override["services"]["server"]["depends_on"] == ["postgres"]
