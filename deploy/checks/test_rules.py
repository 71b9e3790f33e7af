"""The chart's alert rules: `promtool check rules` and `promtool test rules` with
deploy/charts/sck-ingest/tests/alerts.test.yaml, a promtool test for every alert, and a runbook
section for every alert in the docs (README.md or docs/*.md)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

import chart

ALERTS_TEST = chart.CHART / "tests" / "alerts.test.yaml"


def alert_names() -> list[str]:
    """The alerts the chart defines (none when it does not render: test_promtool_check_rules
    reports that)."""
    try:
        return [r["alert"] for g in chart.rule_groups()["groups"] for r in g["rules"]]
    except chart.HelmError:
        return []


@pytest.mark.parametrize("alert", alert_names())
def test_runbook_section_in_the_docs(alert, docs_text):
    assert f"Runbook: {alert}" in docs_text


@pytest.mark.parametrize("alert", alert_names())
def test_runbook_url_points_at_its_section(alert):
    """The default runbookBaseUrl names a file of this repository that has the alert's section
    under the anchor GitHub derives from its heading."""
    base = yaml.safe_load((chart.CHART / "values.yaml").read_text())["monitoring"]["prometheusRule"]["runbookBaseUrl"]
    path, _, anchor_prefix = base.split("/blob/main/", 1)[1].partition("#")
    doc = chart.ROOT / path
    assert doc.is_file(), f"runbookBaseUrl names {path}, not a file of the repository"
    headings = {line.lstrip("#").strip().lower().replace(":", "").replace(" ", "-")
                for line in doc.read_text().splitlines() if line.startswith("#")}
    assert f"{anchor_prefix}{alert.lower()}" in headings, f"{path} has no heading for #{anchor_prefix}{alert.lower()}"


def test_every_alert_has_a_promtool_test(rule_groups):
    names = {r["alert"] for g in rule_groups["groups"] for r in g["rules"]}
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    assert names == tested, f"untested: {names - tested}, tests of unknown alerts: {tested - names}"


@pytest.fixture(scope="module")
def rules_dir(rule_groups, tmp_path_factory):
    """The rendered rules as sck-ingest.rules.yaml next to a copy of alerts.test.yaml."""
    d = tmp_path_factory.mktemp("rules")
    (d / "sck-ingest.rules.yaml").write_text(yaml.safe_dump(rule_groups, sort_keys=False))
    shutil.copy(ALERTS_TEST, d / "alerts.test.yaml")
    return d


@pytest.mark.parametrize("args", [["check", "rules", "sck-ingest.rules.yaml"], ["test", "rules", "alerts.test.yaml"]],
                         ids=["check-rules", "test-rules"])
def test_promtool(rules_dir, args):
    r = subprocess.run(["promtool", *args], cwd=rules_dir, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
