"""What the bridge StatefulSet and the decoder and forwarder Deployments satisfy in every toggle's
rendering that has them: probes, security, grace above the drain timeout, spread, requests, ports,
labels, PDBs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import chart
from chart import find, pod_spec


@dataclass
class Workload:
    docs: list[dict]
    component: str
    obj: dict

    @property
    def spec(self) -> dict:
        return pod_spec(self.obj)

    @property
    def container(self) -> dict:
        return self.spec["containers"][0]


CASES = [(t, c) for t in chart.TOGGLES for c in chart.components(t)]


@pytest.fixture(params=CASES, ids=[f"{t}/{c}" for t, c in CASES])
def w(request, rendered) -> Workload:
    toggle, component = request.param
    docs = rendered(toggle)
    return Workload(docs, component, chart.workload(docs, component))


@pytest.mark.parametrize("toggle, component", CASES, ids=[f"{t}/{c}" for t, c in CASES])
def test_exactly_one_workload(rendered, toggle, component):
    found = find(rendered(toggle), (chart.WORKLOADS | chart.OPTIONAL_WORKLOADS)[component], component)
    assert len(found) == 1


def test_liveness_on_healthz(w):
    assert w.container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_readiness_on_readyz(w):
    assert w.container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_read_only_root_no_privilege_escalation_no_capabilities(w):
    sc = w.container["securityContext"]
    assert sc.get("readOnlyRootFilesystem") is True
    assert sc.get("allowPrivilegeEscalation") is False
    assert sc.get("capabilities", {}).get("drop") == ["ALL"]


def test_runs_as_non_root(w):
    assert w.spec["securityContext"].get("runAsNonRoot") is True


def test_grace_period_exceeds_drain_timeout(w):
    name = w.container["envFrom"][0]["configMapRef"]["name"]
    cm = next(d for d in w.docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
    assert w.spec["terminationGracePeriodSeconds"] > int(cm["data"]["DRAIN_TIMEOUT_SECS"])


def test_has_topology_spread(w):
    assert w.spec.get("topologySpreadConstraints")


def test_has_resource_requests(w):
    assert "requests" in w.container["resources"]


def test_metrics_port_is_the_values_metrics_port(w):
    assert w.container["ports"][0]["containerPort"] == chart.default_values()["metricsPort"]


def test_has_recommended_labels(w):
    labels = w.obj["metadata"]["labels"]
    missing = [k for k in ("name", "instance", "version", "managed-by", "component") if f"app.kubernetes.io/{k}" not in labels]
    assert not missing


def test_selector_matches_pod_labels(w):
    pod_labels = w.obj["spec"]["template"]["metadata"]["labels"]
    sel = w.obj["spec"]["selector"]["matchLabels"]
    assert all(pod_labels.get(k) == v for k, v in sel.items())


def test_pod_disruption_budget_selects_its_pods(w):
    pdbs = find(w.docs, "PodDisruptionBudget", w.component)
    assert len(pdbs) == 1
    assert pdbs[0]["spec"]["selector"]["matchLabels"] == w.obj["spec"]["selector"]["matchLabels"]


def test_mounts_no_api_token(w):
    assert w.spec.get("automountServiceAccountToken") is False
