"""What each value toggle of the chart turns on or off (one class per toggle of chart.TOGGLES):
KEDA or HPA autoscaling and their caps, ServiceMonitor and rules, scrape annotations, where the
credentials come from, fixed replicas, SASL_SSL and TLS wiring."""

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
