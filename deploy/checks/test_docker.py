"""deploy/docker (the local stack): no Docker engine here, so what can be checked without one:
compose builds existing Dockerfile targets, mounts existing files, depends on defined services,
runs two read-only bridges and decoders that Prometheus scrapes, and (profile platform) a forwarder
with PostgreSQL, EMQX authenticates and denies unmatched topics but lets the forwarder publish,
Grafana provisions the dashboard; the image runs as non-root with a HEALTHCHECK."""

from __future__ import annotations

import re

import pytest
import yaml

from chart import ROOT

DOCKER = ROOT / "deploy" / "docker"
SERVICES: dict = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
ROLES = ("bridge", "decoder")

BUILDS = [pytest.param(svc["build"], id=name) for name, svc in SERVICES.items() if svc.get("build")]
MOUNTS = [pytest.param(vol.split(":")[0], id=f"{name}:{vol.split(':')[0]}")
          for name, svc in SERVICES.items() for vol in svc.get("volumes", []) if vol.split(":")[0].startswith(".")]
DEPENDS = [pytest.param(dep, id=f"{name}->{dep}") for name, svc in SERVICES.items() for dep in svc.get("depends_on", {})]


def of_role(role: str) -> list[str]:
    return [n for n in SERVICES if n.startswith(f"{role}-")]


@pytest.mark.parametrize("build", BUILDS)
def test_builds_an_existing_dockerfile_target(build):
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE, re.M | re.I))
    assert (DOCKER / build["context"] / build["dockerfile"]).is_file()
    assert build["target"] in targets


@pytest.mark.parametrize("host_path", MOUNTS)
def test_mounted_path_exists(host_path):
    assert (DOCKER / host_path).exists()


@pytest.mark.parametrize("dep", DEPENDS)
def test_depends_on_a_defined_service(dep):
    assert dep in SERVICES


@pytest.mark.parametrize("role", ROLES)
def test_runs_two(role):
    assert len(of_role(role)) == 2


@pytest.mark.parametrize("role", ROLES)
def test_runs_with_a_read_only_root_filesystem(role):
    assert all(SERVICES[n].get("read_only") is True for n in of_role(role))


def test_prometheus_scrapes_every_bridge_decoder_and_forwarder():
    prom = yaml.safe_load((DOCKER / "prometheus/prometheus.yml").read_text())
    scraped = {t.split(":")[0] for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert scraped == {n for role in ROLES for n in of_role(role)} | {"forwarder"}


def test_forwarder_is_read_only_in_the_platform_profile_with_postgres():
    fwd = SERVICES["forwarder"]
    assert fwd.get("read_only") is True
    assert fwd.get("profiles") == ["platform"] == SERVICES["postgres"].get("profiles")
    assert "@postgres:5432/" in fwd["environment"]["REGISTRY_POSTGRES_URL"]


def test_forwarder_waits_for_the_decoders_group():
    decoder_group = SERVICES["decoder-1"]["environment"].get("KAFKA_GROUP", "sck-decoder")
    assert SERVICES["forwarder"]["environment"]["FORWARD_AFTER_GROUP"] == decoder_group


def test_emqx_lets_the_forwarders_user_publish_forward_topics():
    acl = (DOCKER / "emqx/acl.conf").read_text()
    user = SERVICES["forwarder"]["environment"]["MQTT_USERNAME"]
    assert re.search(rf'{{allow, {{username, "{re.escape(user)}"}}, publish, \["/forward/\+/device/\+/readings"\]}}', acl)


def test_emqx_authenticates_and_denies_unmatched_topics():
    env = SERVICES["emqx"]["environment"]
    assert env.get("EMQX_AUTHORIZATION__NO_MATCH") == "deny"
    assert "EMQX_AUTHENTICATION__1__MECHANISM" in env


def test_grafana_provisions_the_dashboards_folder():
    provisioning = (DOCKER / "grafana/provisioning/dashboards/sck-ingest.yml").read_text()
    assert "/var/lib/grafana/dashboards" in provisioning


def test_image_runs_as_a_non_root_user():
    assert re.search(r"^USER\s+10001", DOCKERFILE, re.M)


def test_image_has_a_healthcheck():
    assert "HEALTHCHECK" in DOCKERFILE
