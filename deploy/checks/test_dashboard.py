"""The Grafana dashboard shows what operators need, and every metric it, the alert rules and the
prometheus-adapter rule query exists in the services' /metrics (the committed samples in
deploy/charts/sck-ingest/tests/metrics; scripts/test-integration.sh compares those with freshly
started services through `deploy/checks/run.sh live-metrics`)."""

from __future__ import annotations

import pytest

import metrics

PANELS = ("ingest rate by kind", "readings/s", "errors by reason", "lag by partition", "end-to-end",
          "insert latency", "in-flight", "replicas", "device registry lookups", "forwarded messages/s",
          "dead letters by reason", "forwarder queued records and lag")


def exprs(dashboard: dict) -> list[str]:
    """Every query of the dashboard: panel targets and template variable definitions."""
    out = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return out + [v.get("definition", "") for v in dashboard["templating"]["list"]]


@pytest.mark.parametrize("want", PANELS)
def test_has_a_panel_for(dashboard, want):
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    assert want in titles


def test_shows_end_to_end_p50_and_p99(dashboard):
    e2e = [e for e in exprs(dashboard) if "end_to_end" in e]
    assert any("0.5," in e for e in e2e) and any("0.99," in e for e in e2e)


def test_panel_ids_are_unique(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_metric_samples_present():
    assert [f.name for f in metrics.sample_files()] == [f"{s}.prom" for s in metrics.SERVICES]


@pytest.fixture(scope="module")
def queries(dashboard, rule_groups, adapter_rule) -> dict[str, list[str]]:
    return {
        "dashboard": exprs(dashboard),
        "alert-rules": [r["expr"] for g in rule_groups["groups"] for r in g["rules"]],
        "adapter-rule": [adapter_rule["seriesQuery"]],
    }


SOURCES = ("dashboard", "alert-rules", "adapter-rule")


@pytest.mark.parametrize("source", SOURCES)
def test_queries_sck_metrics(queries, source):
    assert set().union(*(metrics.queried(e) for e in queries[source]))


@pytest.mark.parametrize("source", SOURCES)
def test_every_queried_metric_is_exported(queries, source):
    used = set().union(*(metrics.queried(e) for e in queries[source]))
    missing = sorted(used - metrics.sample_names())
    assert not missing
