"""The Kubernetes manifests, rendered as kustomize would (base + overlay patches), validated against
the Kubernetes schemas offline, with probes on real routes and ports and a grace period that covers
the drain."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from app.settings import Settings
from tests.helpers import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
VERSION = "1.33"
CUSTOM_KINDS = {"ServiceMonitor"}  # a CRD of the Prometheus Operator: no schema in Kubernetes'


def merge(base, patch):
    """Strategic merge as kustomize applies it to these files: maps deep, named lists by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = next((i for i, old in enumerate(merged) if old["name"] == item["name"]), None)
            if match is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[match] = merge(merged[match], item)
        return merged
    return copy.deepcopy(patch)


def render(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources += render(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for label in kustomization.get("labels", []):
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load((directory / patch["path"]).read_text())
        for index, resource in enumerate(resources):
            same = (resource["kind"], resource["metadata"]["name"])
            if same == (change["kind"], change["metadata"]["name"]):
                resources[index] = merge(resource, change)
    return resources


@pytest.fixture(params=["cpu", "cuda"])
def rendered(request) -> list[dict]:
    return render(KUBERNETES / "overlays" / request.param)


def test_every_manifest_is_valid_against_the_kubernetes_schemas(rendered):
    kinds = set()
    for resource in rendered:
        kinds.add(resource["kind"])
        if resource["kind"] in CUSTOM_KINDS:
            assert resource["apiVersion"].startswith("monitoring.coreos.com/")
            continue
        kubernetes_validate.validate(resource, VERSION, strict=True)
    assert kinds >= {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"}


def deployment(rendered: list[dict]) -> dict:
    return next(r for r in rendered if r["kind"] == "Deployment")


def test_probes_point_at_real_routes_on_the_served_port(rendered, make_app):
    spec = deployment(rendered)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert ports["http"] == int(env["LLM_INFERENCE_PORT"])
    routes = {rule.rule for rule in make_app().url_map.iter_rules()}
    probes = {
        name: container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/health/ready",
        "readinessProbe": "/health/ready",
        "livenessProbe": "/health/live",
    }
    assert all(probe["path"] in routes and probe["port"] == "http" for probe in probes.values())
    service = next(r for r in rendered if r["kind"] == "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    selector = deployment(rendered)["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment(rendered)["spec"]["template"]["metadata"]["labels"].items()


def test_the_grace_period_covers_the_drain_and_the_pre_stop_pause(rendered):
    spec = deployment(rendered)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    drain = int(env.get("LLM_DRAIN_SECONDS") or Settings.drain_seconds)
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > drain + pause


def test_the_cuda_overlay_asks_for_a_gpu_and_the_cpu_overlay_sizes_the_engine_threads():
    cuda = deployment(render(KUBERNETES / "overlays" / "cuda"))["spec"]["template"]["spec"]["containers"][0]
    assert cuda["resources"]["limits"]["nvidia.com/gpu"] == "1"
    cpu = deployment(render(KUBERNETES / "overlays" / "cpu"))["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in cpu["env"]}
    assert env["RAYON_NUM_THREADS"] == cpu["resources"]["limits"]["cpu"]
    assert env["LLM_INFERENCE_PORT"] == "8091"  # the base's env survives the patch
