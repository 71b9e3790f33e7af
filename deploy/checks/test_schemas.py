"""Every object the chart (each toggle) and the kustomize overlays render, validated without a
cluster (see schemas.py): built-ins against the Kubernetes schemas of each supported version,
KEDA/Prometheus-operator objects against their CRD schemas, other custom resources by structure.
Test ids read RENDERING/KIND/NAME[/VERSION]."""

from __future__ import annotations

import functools

import pytest

import chart
import kustomize
import schemas

RENDERINGS = {f"chart:{t}": functools.partial(chart.rendered, t) for t in chart.TOGGLES} | {
    f"kustomize:{o.name}": functools.partial(kustomize.docs, o.name) for o in kustomize.overlays()
}
CASES = schemas.cases(RENDERINGS)


@functools.cache
def crd_report(where: str) -> schemas.CrdReport:
    return schemas.crd_report(RENDERINGS[where]())


@pytest.mark.parametrize("where, doc, version", CASES.builtin)
def test_builtin_object_matches_the_kubernetes_schema(where, doc, version):
    error = schemas.kubernetes_error(doc, version)
    assert error is None, error


@pytest.mark.parametrize("where, doc", CASES.custom)
def test_custom_resource_has_a_name_and_a_spec(where, doc):
    assert doc.get("metadata", {}).get("name")
    assert "spec" in doc


@pytest.mark.parametrize("where", CASES.crd_renderings)
def test_crd_validator_runs(where):
    report = crd_report(where)
    assert report.returncode == 0, report.stderr[:300]


@pytest.mark.parametrize("where", CASES.crd_renderings)
def test_every_keda_and_prometheus_operator_object_has_a_schema(where):
    report = crd_report(where)
    assert len(report.results) == report.count
    assert all(x["ok"] is not None for x in report.results), report.results


@pytest.mark.parametrize("where, index, doc", CASES.with_schema)
def test_custom_resource_matches_its_crd_schema(where, index, doc):
    report = crd_report(where)
    assert index < len(report.results), f"no result from the validator: {report.stderr[:300]}"
    result = report.results[index]
    assert result["ok"] is True, result.get("error", "")[:300]
