"""What each value toggle of the chart turns on or off (one class per toggle of chart.TOGGLES):
KEDA or HPA autoscaling and their caps, ServiceMonitor and rules, scrape annotations, where the
credentials come from, fixed replicas, SASL_SSL and TLS wiring, the decoders' device registry and
the forwarders."""

from __future__ import annotations

import json

import pytest

import chart
from chart import BASE, env_of, find, merge, one, pod_annotations, pod_spec, settings, workload, workloads


def mounts(w: dict) -> set[str]:
    return {m["mountPath"] for m in pod_spec(w)["containers"][0].get("volumeMounts", [])}


class TestKedaDefault:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("keda-default")

    @pytest.fixture
    def scaled(self, docs):
        return one(docs, "ScaledObject", "decoder")

    def test_trigger_is_kafka(self, scaled):
        assert scaled["spec"]["triggers"][0]["type"] == "kafka"

    def test_trigger_lag_threshold_topic_and_group(self, scaled):
        meta = scaled["spec"]["triggers"][0]["metadata"]
        assert (meta["lagThreshold"], meta["topic"], meta["consumerGroup"]) == ("5000", "sck.readings", "sck-decoder")

    def test_capped_at_the_12_partitions(self, scaled):
        assert scaled["spec"]["maxReplicaCount"] == 12

    def test_targets_the_decoder_deployment(self, docs, scaled):
        assert scaled["spec"]["scaleTargetRef"]["name"] == workload(docs, "decoder")["metadata"]["name"]

    def test_no_trigger_authentication_without_sasl_or_tls(self, scaled):
        assert "authenticationRef" not in scaled["spec"]["triggers"][0]

    def test_no_decoder_hpa(self, docs):
        assert not find(docs, "HorizontalPodAutoscaler", "decoder")

    def test_bridge_hpa_targets_the_statefulset(self, docs):
        assert one(docs, "HorizontalPodAutoscaler", "bridge")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"

    def test_bridge_hpa_on_cpu(self, docs):
        assert one(docs, "HorizontalPodAutoscaler", "bridge")["spec"]["metrics"][0]["resource"]["name"] == "cpu"

    @pytest.mark.parametrize("component", chart.WORKLOADS)
    def test_autoscaled_workload_has_no_fixed_replicas(self, docs, component):
        assert "replicas" not in workload(docs, component).get("spec", {})

    def test_bridge_client_id_suffix_is_the_stable_pod_name(self, docs):
        suffix = env_of(workload(docs, "bridge")).get("MQTT_CLIENT_SUFFIX", {})
        assert suffix.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"

    def test_scrape_annotations_when_no_servicemonitor(self, docs):
        assert pod_annotations(workload(docs, "bridge")).get("prometheus.io/scrape") == "true"

    def test_no_servicemonitor_or_prometheusrule(self, docs):
        assert not find(docs, "ServiceMonitor") and not find(docs, "PrometheusRule")

    def test_dashboard_configmap_for_the_grafana_sidecar(self, docs):
        dash = [c for c in find(docs, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        assert len(dash) == 1
        assert json.loads(dash[0]["data"]["sck-ingest.json"])["uid"] == "sck-ingest"

    def test_created_secret_holds_only_the_values_that_are_set(self, docs):
        assert set(one(docs, "Secret")["data"]) == {"clickhouse-user"}

    def test_bridge_settings_production_mode_and_mqtt_host(self, docs):
        s = settings(docs, "bridge")
        assert (s.get("APP_ENV"), s.get("MQTT_HOST")) == ("production", "emqx-listeners")

    def test_no_password_in_a_configmap(self, docs):
        keys = [k for c in find(docs, "ConfigMap") for k in c.get("data", {}) if "PASSWORD" in k]
        assert not keys

    def test_notes_explain_the_autoscaling(self):
        notes = chart.notes(merge(BASE, {}))
        assert "KEDA" in notes and "1..12 replicas" in notes

    def test_no_forwarder_objects(self, docs):
        found = [d["kind"] for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "forwarder"]
        assert not found

    def test_decoder_has_no_registry(self, docs):
        s, env = settings(docs, "decoder"), env_of(workload(docs, "decoder"))
        assert not [k for k in [*s, *env] if k.startswith("REGISTRY_") or k in ("REDIS_URL", "PLATFORM_UPDATES")]


class TestHpa:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("hpa")

    @pytest.fixture
    def metric(self, docs):
        return one(docs, "HorizontalPodAutoscaler", "decoder")["spec"]["metrics"][0]

    def test_no_scaled_object(self, docs):
        assert not find(docs, "ScaledObject")

    def test_external_lag_metric_5000_per_replica(self, metric):
        assert metric["type"] == "External"
        target = metric["external"]["target"]
        assert (target["type"], target["averageValue"]) == ("AverageValue", "5000")

    def test_readings_topic_only(self, metric):
        assert metric["external"]["metric"]["selector"]["matchLabels"] == {"topic": "sck.readings"}

    def test_capped_at_the_12_partitions(self, docs):
        assert one(docs, "HorizontalPodAutoscaler", "decoder")["spec"]["maxReplicas"] == 12

    def test_metric_is_the_one_the_shipped_adapter_rule_serves(self, metric, adapter_rule):
        assert metric["external"]["metric"]["name"] == adapter_rule["name"]["as"]


class TestFourPartitions:
    def test_max_replicas_10_capped_at_4_partitions(self, rendered):
        assert one(rendered("4-partitions"), "ScaledObject", "decoder")["spec"]["maxReplicaCount"] == 4


class TestServiceMonitorAndRules:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("servicemonitor-rules")

    def test_servicemonitor_scrapes_http_metrics_with_the_selector_label(self, docs):
        sm = one(docs, "ServiceMonitor")
        assert sm["spec"]["endpoints"][0]["port"] == "http-metrics"
        assert sm["metadata"]["labels"].get("release") == "kps"

    def test_servicemonitor_selects_both_services_metrics_ports(self, docs):
        sel = one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
        svcs = [s for s in find(docs, "Service") if all(s["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        assert len(svcs) == 2
        assert all(s["spec"]["ports"][0]["name"] == "http-metrics" for s in svcs)

    def test_one_prometheus_rule(self, docs):
        assert len(find(docs, "PrometheusRule")) == 1

    @pytest.mark.parametrize("component", chart.WORKLOADS)
    def test_no_scrape_annotations_next_to_a_servicemonitor(self, docs, component):
        assert "prometheus.io/scrape" not in pod_annotations(workload(docs, component))


class TestNoScrapeAnnotations:
    def test_scrape_annotations_can_be_turned_off(self, rendered):
        ws = workloads(rendered("no-scrape-annotations"))
        assert ws and all("prometheus.io/scrape" not in pod_annotations(w) for w in ws)

    def test_notes_warn_when_nothing_scrapes(self):
        assert "WARNING" in chart.notes(chart.toggle_values("no-scrape-annotations"))


class TestExistingSecret:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("existing-secret")

    def test_the_chart_creates_no_secret(self, docs):
        assert not find(docs, "Secret")

    def test_all_8_credential_variables_read_from_it(self, docs):
        refs = [v["valueFrom"]["secretKeyRef"]["name"] for w in workloads(docs)
                for v in env_of(w).values() if "secretKeyRef" in v.get("valueFrom", {})]
        assert len(refs) == 8 and set(refs) == {"sck-creds"}

    def test_no_checksum_of_a_secret_it_does_not_render(self, docs):
        assert all("checksum/secret" not in pod_annotations(w) for w in workloads(docs))


class TestAutoscalingOff:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("autoscaling-off")

    def test_no_autoscalers(self, docs):
        assert not find(docs, "HorizontalPodAutoscaler") and not find(docs, "ScaledObject")

    @pytest.mark.parametrize("component, replicas", [("bridge", 3), ("decoder", 4)])
    def test_fixed_replicas(self, docs, component, replicas):
        assert workload(docs, component).get("spec", {}).get("replicas") == replicas


class TestSaslSslTls:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("sasl-ssl-tls")

    def test_keda_authenticates_with_the_sasl_credentials_and_the_ca(self, docs):
        ta = one(docs, "TriggerAuthentication", "decoder")
        params = {r["parameter"]: (r["name"], r["key"]) for r in ta["spec"]["secretTargetRef"]}
        assert set(params) == {"username", "password", "ca"}
        assert params["ca"] == ("kafka-ca", "ca.crt")

    def test_trigger_uses_scram_sha512_over_tls(self, docs):
        ta = one(docs, "TriggerAuthentication", "decoder")
        trig = one(docs, "ScaledObject", "decoder")["spec"]["triggers"][0]
        assert (trig["metadata"]["sasl"], trig["metadata"]["tls"]) == ("scram_sha512", "enable")
        assert trig["authenticationRef"]["name"] == ta["metadata"]["name"]

    @pytest.mark.parametrize("component", chart.WORKLOADS)
    def test_service_gets_protocol_mechanism_and_ca_path(self, docs, component):
        s = settings(docs, component)
        assert (s.get("KAFKA_SECURITY_PROTOCOL"), s.get("KAFKA_SASL_MECHANISM"), s.get("KAFKA_SSL_CA_FILE")) == \
            ("sasl_ssl", "SCRAM-SHA-512", "/etc/sck/kafka-ca/ca.crt")

    def test_bridge_mounts_both_ca_bundles(self, docs):
        assert mounts(workload(docs, "bridge")) == {"/etc/sck/kafka-ca", "/etc/sck/mqtt-ca"}

    def test_mqtt_tls_wired(self, docs):
        s = settings(docs, "bridge")
        assert (s.get("MQTT_TLS"), s.get("MQTT_CA_FILE")) == ("true", "/etc/sck/mqtt-ca/ca.crt")

    def test_decoder_mounts_the_kafka_and_clickhouse_ca_bundles(self, docs):
        d = workload(docs, "decoder")
        vols = {v["name"]: v["secret"]["secretName"] for v in pod_spec(d).get("volumes", [])}
        assert mounts(d) == {"/etc/sck/kafka-ca", "/etc/sck/clickhouse-ca"}
        assert vols.get("clickhouse-ca") == "clickhouse-ca"

    def test_clickhouse_tls_wired(self, docs):
        s = settings(docs, "decoder")
        assert (s.get("CLICKHOUSE_CA_FILE"), s.get("CLICKHOUSE_URL")) == \
            ("/etc/sck/clickhouse-ca/ca.crt", "https://clickhouse:8443")

    def test_created_secret_holds_the_credentials(self, docs):
        wanted = {"kafka-sasl-username", "kafka-sasl-password", "mqtt-username", "mqtt-password"}
        assert wanted <= set(one(docs, "Secret")["data"])


def secret_key_of(w: dict, var: str) -> tuple[str, str] | None:
    ref = env_of(w).get(var, {}).get("valueFrom", {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


class TestPlatformForwarder:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("platform-forwarder")

    @pytest.fixture
    def secret(self, docs):
        return one(docs, "Secret")["metadata"]["name"]

    @pytest.mark.parametrize("var, key", [("REGISTRY_POSTGRES_URL", "registry-postgres-url"), ("REDIS_URL", "redis-url")])
    def test_decoder_reads_the_platform_urls_from_the_secret(self, docs, secret, var, key):
        assert secret_key_of(workload(docs, "decoder"), var) == (secret, key)

    def test_secret_holds_the_urls(self, docs):
        data = one(docs, "Secret")["data"]
        assert {"registry-postgres-url", "redis-url"} <= set(data)

    def test_no_url_in_a_configmap(self, docs):
        values = [v for c in find(docs, "ConfigMap") for v in c.get("data", {}).values()]
        assert not [v for v in values if "postgres://" in v or "redis://" in v]

    def test_decoder_registry_settings(self, docs):
        s = settings(docs, "decoder")
        got = {k: s.get(k) for k in ("REGISTRY_REFRESH_SECS", "REGISTRY_NEGATIVE_TTL_SECS", "REGISTRY_NEGATIVE_MAX",
                                     "REGISTRY_QUERY_TIMEOUT_MS", "PLATFORM_UPDATES")}
        assert got == {"REGISTRY_REFRESH_SECS": "60", "REGISTRY_NEGATIVE_TTL_SECS": "300", "REGISTRY_NEGATIVE_MAX": "100000",
                       "REGISTRY_QUERY_TIMEOUT_MS": "2000", "PLATFORM_UPDATES": "true"}

    @pytest.mark.parametrize("var, key", [("REGISTRY_POSTGRES_URL", "registry-postgres-url"),
                                          ("MQTT_USERNAME", "mqtt-username"), ("MQTT_PASSWORD", "mqtt-password")])
    def test_forwarder_credentials_from_the_secret(self, docs, secret, var, key):
        assert secret_key_of(workload(docs, "forwarder"), var) == (secret, key)

    def test_forwarder_waits_for_the_decoders_group_in_its_own(self, docs):
        s = settings(docs, "forwarder")
        assert (s.get("KAFKA_GROUP"), s.get("FORWARD_AFTER_GROUP")) == ("sck-forwarder", settings(docs, "decoder")["KAFKA_GROUP"])

    def test_forwarder_publishes_to_the_bridges_broker_over_tls(self, docs):
        s, b = settings(docs, "forwarder"), settings(docs, "bridge")
        keys = ("MQTT_HOST", "MQTT_PORT", "MQTT_TLS", "MQTT_CA_FILE")
        assert {k: s.get(k) for k in keys} == {k: b.get(k) for k in keys}
        assert (s.get("MQTT_TLS"), s.get("MQTT_CLIENT")) == ("true", "sck-forwarder")

    def test_forwarder_mounts_the_kafka_and_mqtt_ca_bundles(self, docs):
        assert mounts(workload(docs, "forwarder")) == {"/etc/sck/kafka-ca", "/etc/sck/mqtt-ca"}

    def test_forwarder_hpa_on_cpu_capped_at_the_12_partitions(self, docs):
        hpa = one(docs, "HorizontalPodAutoscaler", "forwarder")["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": workload(docs, "forwarder")["metadata"]["name"]}
        assert (hpa["maxReplicas"], hpa["metrics"][0]["resource"]["name"]) == (12, "cpu")
        assert "replicas" not in workload(docs, "forwarder")["spec"]

    def test_servicemonitor_selects_the_forwarders_metrics_service(self, docs):
        sel = one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
        svcs = [s for s in find(docs, "Service") if all(s["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        assert sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in svcs) == ["bridge", "decoder", "forwarder"]

    def test_notes_name_the_forwarders(self):
        assert "Forwarders" in chart.notes(chart.toggle_values("platform-forwarder"))


class TestSettingsFollowTheDecoders:
    """Values the forwarder must share with the decoders are derived, not repeated."""

    @pytest.fixture
    def docs(self):
        return chart.render(merge(chart.toggle_values("platform-forwarder"),
                                  {"kafka": {"consumerGroup": "dec-x"}, "maxFutureSecs": 3600}))

    def test_forward_after_group_is_the_decoders_group(self, docs):
        assert (settings(docs, "decoder")["KAFKA_GROUP"], settings(docs, "forwarder")["FORWARD_AFTER_GROUP"]) == ("dec-x", "dec-x")

    def test_max_future_secs_is_the_decoders(self, docs):
        assert (settings(docs, "decoder")["MAX_FUTURE_SECS"], settings(docs, "forwarder")["MAX_FUTURE_SECS"]) == ("3600", "3600")


class TestForwarderExistingSecret:
    @pytest.fixture
    def docs(self, rendered):
        return rendered("forwarder-existing-secret")

    @pytest.mark.parametrize("component, var", [("decoder", "REGISTRY_POSTGRES_URL"), ("decoder", "REDIS_URL"),
                                                ("forwarder", "REGISTRY_POSTGRES_URL")])
    def test_urls_from_the_existing_secret(self, docs, component, var):
        assert secret_key_of(workload(docs, component), var)[0] == "sck-creds"

    def test_fixed_replicas_without_autoscaling(self, docs):
        assert workload(docs, "forwarder")["spec"].get("replicas") == 2
        assert not find(docs, "HorizontalPodAutoscaler", "forwarder")
