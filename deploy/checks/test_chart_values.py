"""The chart's values: `helm lint --strict` of the defaults and of every toggle, every toggle
renders, and values that must be refused fail with an error naming the problem."""

from __future__ import annotations

import pytest

import chart
from chart import BASE, merge

LINTED = {"default-values": {}} | {t: chart.toggle_values(t) for t in chart.TOGGLES}


@pytest.mark.parametrize("values", LINTED.values(), ids=LINTED.keys())
def test_helm_lint_strict_is_clean(values):
    problems = chart.lint_problems(values)
    assert not problems


@pytest.mark.parametrize("toggle", chart.TOGGLES)
def test_toggle_renders(toggle):
    try:
        chart.rendered(toggle)
    except chart.HelmError as e:
        pytest.fail(f"does not render: {e}")


# name -> (values, what the error must contain)
REFUSED = {
    "no-mqtt-host": ({}, "mqtt.host is required"),
    "grace-not-above-drain": (merge(BASE, {"decoder": {"terminationGracePeriodSeconds": 20}}), "must exceed"),
    "sasl-without-credentials": (merge(BASE, {"kafka": {"security": {"protocol": "sasl_plaintext", "saslMechanism": "PLAIN"}}}),
                                 "auth.kafka.username"),
    "mqtt-user-without-password": (merge(BASE, {"auth": {"mqtt": {"username": "x"}}}), "both or neither"),
    "unknown-autoscaling-mode": (merge(BASE, {"decoder": {"autoscaling": {"mode": "cpu"}}}), "mode"),
    "misspelt-top-level-key": (merge(BASE, {"bridgee": {}}), "bridgee"),
    "bad-log-format": (merge(BASE, {"logFormat": "xml"}), "logFormat"),
    "bad-kafka-protocol": (merge(BASE, {"kafka": {"security": {"protocol": "tls"}}}), "protocol"),
    "clickhouse-ca-with-http": (merge(BASE, {"clickhouse": {"caSecret": "ca"}}), "https://"),
    "platform-without-registry-url": (merge(BASE, {"platform": {"enabled": True}}), "auth.platform.registryPostgresUrl"),
    "forwarder-without-registry-url": (merge(BASE, {"forwarder": {"enabled": True}}), "auth.platform.registryPostgresUrl"),
    "registry-url-not-postgres": (merge(BASE, {"auth": {"platform": {"registryPostgresUrl": "mysql://x"}}}),
                                  "registryPostgresUrl"),
    "forwarder-grace-not-above-drain": (merge(chart.toggle_values("platform-forwarder"),
                                              {"forwarder": {"terminationGracePeriodSeconds": 10}}), "must exceed"),
}


@pytest.mark.parametrize("values, needle", REFUSED.values(), ids=REFUSED.keys())
def test_refused_with_an_error_naming_it(values, needle):
    with pytest.raises(chart.HelmError) as refused:
        chart.render(values)
    assert needle in str(refused.value)
