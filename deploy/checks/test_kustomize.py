"""The kustomize overlays of deploy/k8s: each builds with `kubectl kustomize` (their objects are
validated in test_schemas.py), the dev overlay's rendered chart is up to date, and the dev overlay
wires its dependencies to what the chart expects."""

from __future__ import annotations

import pytest
import yaml

import chart
import kustomize
from chart import DEV

OVERLAYS = [o.name for o in kustomize.overlays()]


def test_dev_chart_manifest_is_up_to_date():
    """deploy/k8s/overlays/dev/sck-ingest/chart.yaml equals a fresh render (`make k8s-render`)."""
    current = (DEV / "chart.yaml").read_text() if (DEV / "chart.yaml").exists() else ""
    assert current == chart.dev_chart_manifest(), "run `make k8s-render`"


def test_overlays_found():
    assert len(OVERLAYS) >= 3, OVERLAYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds(overlay):
    b = kustomize.build(overlay)
    assert b.returncode == 0, b.stderr[:300]


class TestDevOverlay:
    @pytest.fixture
    def docs(self):
        return kustomize.docs("dev")

    @pytest.fixture
    def values(self):
        return yaml.safe_load((DEV / "values.yaml").read_text())

    def test_has_the_dependencies_and_sck_ingest(self, docs):
        kinds = {d["kind"] for d in docs}
        wanted = {"EMQX", "Kafka", "KafkaTopic", "ClickHouseInstallation", "StatefulSet", "Deployment",
                  "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"}
        assert wanted <= kinds, f"missing: {sorted(wanted - kinds)}"

    def test_creates_the_secret_the_chart_reads(self, docs, values):
        secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
        assert values["auth"]["existingSecret"] in secrets

    def test_readings_partitions_match_the_charts_kafka_partitions(self, docs, values):
        topics = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaTopic"}
        assert topics.get("sck.readings", {}).get("spec", {}).get("partitions") == values["kafka"]["partitions"]

    def test_namespaces(self, docs):
        assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"sck-dev", "monitoring"}
