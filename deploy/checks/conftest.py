"""Shared fixtures of the deployment checks (pytest, run by deploy/checks/run.sh, which installs
helm-python-sdk, kubernetes-validate, kubectl, promtool and the CRD validator first).

The checks need no cluster and no Docker engine. One file per concern: test_chart_values.py
(lint, render, refused values), test_chart_workloads.py (what every rendering's bridge and decoder
satisfy), test_chart_toggles.py (what each value toggle changes), test_schemas.py (every rendered
object against the Kubernetes and CRD schemas), test_rules.py (promtool), test_kustomize.py
(overlays), test_dashboard.py (metric names), test_docker.py (compose files). The helpers they
share are plain modules (chart.py, kustomize.py, schemas.py, metrics.py) so that parameters can be
computed at collection time and cli.py can use them too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import yaml

import chart


@pytest.fixture(scope="session")
def root() -> Path:
    return chart.ROOT


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], list[dict]]:
    """rendered(toggle): the chart's objects for a toggle of chart.TOGGLES (cached for the run);
    the calling test errors with Helm's message when the toggle does not render."""
    def get(toggle: str) -> list[dict]:
        try:
            return chart.rendered(toggle)
        except chart.HelmError as e:
            pytest.fail(f"chart toggle {toggle} does not render: {e}")
    return get


@pytest.fixture(scope="session")
def rule_groups() -> dict:
    """The chart's alert rules as a promtool rule file."""
    return chart.rule_groups()


@pytest.fixture(scope="session")
def adapter_rule() -> dict:
    """The prometheus-adapter external rule that serves the decoder's lag to the HPA."""
    cm = yaml.safe_load((chart.ROOT / "deploy/k8s/base/prometheus-adapter/adapter-config.yaml").read_text())
    rules = yaml.safe_load(cm["data"]["config.yaml"])["externalRules"]
    return next(r for r in rules if "sck_decoder_consumer_lag" in r["seriesQuery"])


@pytest.fixture(scope="session")
def dashboard() -> dict:
    return json.loads((chart.CHART / "dashboards/sck-ingest.json").read_text())


@pytest.fixture(scope="session")
def docs_text() -> str:
    """README.md and docs/*.md together: the documentation, wherever a section lives."""
    files = [chart.ROOT / "README.md", *sorted((chart.ROOT / "docs").glob("*.md"))]
    return "\n".join(f.read_text() for f in files if f.is_file())
