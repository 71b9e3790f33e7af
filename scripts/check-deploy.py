#!/usr/bin/env python3
"""Checks of everything deployment-related that CI can check without a cluster.

  check-deploy.py [all]                 chart, alert rules, kustomize overlays, dashboard (default)
  check-deploy.py live-metrics DIR      the metric names served by running services (DIR/*.prom)
                                        equal those of the committed sample
  check-deploy.py k8s-render            regenerate deploy/k8s/overlays/dev/sck-ingest/chart.yaml

Runs in the project's virtualenv (.tools/venv, made by scripts/check-deploy.sh) with
helm-python-sdk (Helm's Go SDK: lint and render, no helm binary), kubernetes-validate (the
Kubernetes JSON schemas), promtool and kubectl (kustomize).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "charts" / "sck-ingest"
SAMPLE_DIR = CHART / "tests" / "metrics"
DEV = ROOT / "deploy" / "k8s" / "overlays" / "dev" / "sck-ingest"
RELEASE, NAMESPACE = "sck", "sck"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the schemas know.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version() + ".0"]
BASE = {"mqtt": {"host": "emqx-listeners"}}
# Custom resources the chart and overlays may render (no schemas offline: checked by assertions).
KNOWN_CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("apps.emqx.io/v2beta1", "EMQX"),
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
}

failures: list[str] = []
passed = 0


def check(cond: bool, what: str) -> None:
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL {what}", flush=True)


def merge(*layers: dict) -> dict:
    out: dict = {}
    for layer in layers:
        out = _merge(out, layer)
    return out


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render_files(values: dict, namespace: str = NAMESPACE) -> dict[str, str]:
    """Renders the chart like `helm template`: template path -> rendered text."""
    return chart().render(values, name=RELEASE, namespace=namespace, is_install=True)


def manifests(files: dict[str, str]) -> list[tuple[str, dict]]:
    """(template path, object) of every rendered object, NOTES.txt excluded."""
    return [(path, doc) for path, text in sorted(files.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def render(values: dict) -> list[dict]:
    """The chart's objects for these values."""
    return [doc for _, doc in manifests(render_files(values))]


def notes(values: dict) -> str:
    return next(v for k, v in render_files(values).items() if k.endswith("NOTES.txt"))


# Custom resources with a CRD schema available offline (npm kubernetes-models, scripts/crd-validate).
SCHEMA_CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def validate_crds(docs: list[dict], where: str) -> None:
    """KEDA and Prometheus-operator objects against their CRDs' OpenAPI schemas (types, enums,
    required fields; CRD schemas allow unknown fields, so those are the assertions' job)."""
    crs = [d for d in docs if (d.get("apiVersion"), d.get("kind")) in SCHEMA_CRDS]
    if not crs:
        return
    script = os.environ.get("CRD_VALIDATE")
    if not script:
        check(False, "CRD_VALIDATE is not set (run through scripts/check-deploy.sh)")
        return
    r = subprocess.run(["node", script], input=json.dumps(crs), capture_output=True, text=True)
    check(r.returncode == 0, f"{where}: CRD validator ran ({r.stderr.strip()[:300]})")
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    check(len(results) == len(crs) and all(x["ok"] is not None for x in results),
          f"{where}: every KEDA/Prometheus-operator object had a schema")
    for x in results:
        check(x["ok"] is True, f"{where}: {x['kind']}/{x['name']} matches its CRD schema ({x.get('error', '')[:300]})")


def validate(docs: list[dict], where: str) -> None:
    """Built-in kinds against the Kubernetes schemas (strict: unknown fields fail); KEDA and
    Prometheus-operator objects against their CRD schemas."""
    validate_crds(docs, where)
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if key in KNOWN_CRDS:
            check(bool(doc.get("metadata", {}).get("name")) and "spec" in doc, f"{name} has a name and a spec")
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                check(True, name)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                check(False, f"{name} invalid for Kubernetes {version}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError:
                check(False, f"{name}: unknown kind {key} (not a built-in and not a known CRD)")


def find(docs: list[dict], kind: str, component: str | None = None) -> list[dict]:
    return [
        d for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component)
    ]


def one(docs: list[dict], kind: str, component: str | None, where: str) -> dict:
    found = find(docs, kind, component)
    check(len(found) == 1, f"{where}: exactly one {kind} ({component or 'any'}), got {len(found)}")
    return found[0] if found else {}


def pod_spec(workload: dict) -> dict:
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def env_of(workload: dict) -> dict[str, dict]:
    c = pod_spec(workload)["containers"][0]
    return {e["name"]: e for e in c.get("env", [])}


def lint_values(values: dict, where: str) -> None:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    bad = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
    check(not bad, f"{where}: helm lint --strict clean ({bad})")


# ---------------------------------------------------------------------------------------------
# The chart


def check_workloads(docs: list[dict], where: str) -> None:
    """What every rendering must satisfy: probes, security, grace, spread, PDBs, labels."""
    values = chart().values
    for kind, component in (("StatefulSet", "bridge"), ("Deployment", "decoder")):
        w = one(docs, kind, component, where)
        if not w:
            continue
        spec = pod_spec(w)
        c = spec["containers"][0]
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{where}: {component} liveness on /healthz")
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{where}: {component} readiness on /readyz")
        sc = c["securityContext"]
        check(
            sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"],
            f"{where}: {component} read-only root, no privilege escalation, capabilities dropped",
        )
        check(spec["securityContext"].get("runAsNonRoot") is True, f"{where}: {component} runs as non-root")
        cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == c["envFrom"][0]["configMapRef"]["name"])
        drain = int(cm["data"]["DRAIN_TIMEOUT_SECS"])
        check(spec["terminationGracePeriodSeconds"] > drain,
              f"{where}: {component} grace {spec['terminationGracePeriodSeconds']} s > drain {drain} s")
        check(bool(spec.get("topologySpreadConstraints")), f"{where}: {component} has topology spread")
        check("requests" in c["resources"], f"{where}: {component} has resource requests")
        check(c["ports"][0]["containerPort"] == values["metricsPort"], f"{where}: {component} metrics port")
        labels = w["metadata"]["labels"]
        check(all(f"app.kubernetes.io/{k}" in labels for k in ("name", "instance", "version", "managed-by", "component")),
              f"{where}: {component} has app.kubernetes.io/* labels")
        sel = w["spec"]["selector"]["matchLabels"]
        check(all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()),
              f"{where}: {component} selector matches its pod labels")
        pdbs = find(docs, "PodDisruptionBudget", component)
        check(len(pdbs) == 1 and pdbs[0]["spec"]["selector"]["matchLabels"] == sel, f"{where}: {component} PDB selects its pods")
        check(spec.get("automountServiceAccountToken") is False, f"{where}: {component} mounts no API token")


def check_chart() -> None:
    print("== chart: lint, render, validate", flush=True)
    lint_values({}, "default values")
    scenarios: dict[str, dict] = {
        "keda (default)": {},
        "hpa": {"decoder": {"autoscaling": {"mode": "hpa"}}},
        "serviceMonitor+rules": {"monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
                                                "prometheusRule": {"enabled": True}}},
        "serviceMonitor off, no annotations": {"monitoring": {"scrapeAnnotations": False}},
        "existing secret": {"auth": {"existingSecret": "sck-creds"}},
        "autoscaling off": {"bridge": {"autoscaling": {"enabled": False}, "replicaCount": 3},
                            "decoder": {"autoscaling": {"enabled": False}, "replicaCount": 4}},
        "sasl_ssl + TLS": {
            "kafka": {"security": {"protocol": "sasl_ssl", "saslMechanism": "SCRAM-SHA-512", "caSecret": "kafka-ca"}},
            "auth": {"kafka": {"username": "sck", "password": "s3cret"}, "mqtt": {"username": "sck-bridge", "password": "pw"}},
            "mqtt": {"port": 8883, "tls": {"enabled": True, "caSecret": "emqx-ca"}},
            "clickhouse": {"url": "https://clickhouse:8443", "caSecret": "clickhouse-ca"},
        },
        "4 partitions": {"kafka": {"partitions": 4}, "decoder": {"autoscaling": {"maxReplicas": 10}}},
    }
    rendered: dict[str, list[dict]] = {}
    for name, extra in scenarios.items():
        values = merge(BASE, extra)
        lint_values(values, name)
        try:
            docs = render(values)
        except helm.HelmError as e:
            check(False, f"{name}: renders ({e})")
            continue
        rendered[name] = docs
        validate(docs, name)
        check_workloads(docs, name)

    d = rendered.get("keda (default)", [])
    so = one(d, "ScaledObject", "decoder", "keda")
    if so:
        trig = so["spec"]["triggers"][0]
        check(trig["type"] == "kafka", "keda: Kafka trigger")
        check(trig["metadata"]["lagThreshold"] == "5000" and trig["metadata"]["topic"] == "sck.readings"
              and trig["metadata"]["consumerGroup"] == "sck-decoder", "keda: lagThreshold, topic and group")
        check(so["spec"]["maxReplicaCount"] == 12, "keda: capped at the 12 partitions")
        check(so["spec"]["scaleTargetRef"]["name"] == one(d, "Deployment", "decoder", "keda")["metadata"]["name"],
              "keda: targets the decoder Deployment")
        check("authenticationRef" not in trig, "keda: no TriggerAuthentication without SASL/TLS")
    check(not find(d, "HorizontalPodAutoscaler", "decoder"), "keda: no decoder HPA")
    bh = one(d, "HorizontalPodAutoscaler", "bridge", "keda")
    if bh:
        check(bh["spec"]["scaleTargetRef"]["kind"] == "StatefulSet", "bridge HPA targets the StatefulSet")
        check(bh["spec"]["metrics"][0]["resource"]["name"] == "cpu", "bridge HPA on CPU")
    check("replicas" not in one(d, "StatefulSet", "bridge", "keda").get("spec", {}), "autoscaled bridge has no fixed replicas")
    check("replicas" not in one(d, "Deployment", "decoder", "keda").get("spec", {}), "autoscaled decoder has no fixed replicas")
    br = one(d, "StatefulSet", "bridge", "keda")
    if br:
        suffix = env_of(br).get("MQTT_CLIENT_SUFFIX", {})
        check(suffix.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
              "bridge client id suffix is the (stable) pod name")
        ann = br["spec"]["template"]["metadata"]["annotations"]
        check(ann.get("prometheus.io/scrape") == "true", "scrape annotations when no ServiceMonitor")
        check(not find(d, "ServiceMonitor") and not find(d, "PrometheusRule"), "no ServiceMonitor/PrometheusRule by default")
    cms = {c["metadata"]["name"]: c for c in find(d, "ConfigMap")}
    dash = [c for c in cms.values() if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    check(len(dash) == 1 and json.loads(dash[0]["data"]["sck-ingest.json"])["uid"] == "sck-ingest",
          "dashboard ConfigMap labelled for the Grafana sidecar carries the dashboard")
    sec = find(d, "Secret")
    check(len(sec) == 1 and set(sec[0]["data"]) == {"clickhouse-user"}, "created Secret holds only the values that are set")
    bcm = next((c for n, c in cms.items() if n.endswith("-bridge")), {})
    check(bcm.get("data", {}).get("APP_ENV") == "production" and bcm["data"].get("MQTT_HOST") == "emqx-listeners",
          "bridge settings: production mode, MQTT host")
    check(all("PASSWORD" not in k for c in cms.values() for k in c.get("data", {})), "no password in a ConfigMap")
    n = notes(merge(BASE, {}))
    check("KEDA" in n and "1..12 replicas" in n, "NOTES.txt explains the autoscaling")

    h = rendered.get("hpa", [])
    check(not find(h, "ScaledObject"), "hpa: no ScaledObject")
    dh = one(h, "HorizontalPodAutoscaler", "decoder", "hpa")
    if dh:
        m = dh["spec"]["metrics"][0]
        check(m["type"] == "External" and m["external"]["target"]["type"] == "AverageValue"
              and m["external"]["target"]["averageValue"] == "5000", "hpa: external lag metric, 5000 per replica")
        check(m["external"]["metric"]["selector"]["matchLabels"] == {"topic": "sck.readings"}, "hpa: readings topic only")
        check(dh["spec"]["maxReplicas"] == 12, "hpa: capped at the 12 partitions")
        adapter = adapter_rule()
        check(m["external"]["metric"]["name"] == adapter["name"]["as"],
              "hpa: metric name is the one the shipped prometheus-adapter rule serves")

    p4 = rendered.get("4 partitions", [])
    if p4:
        check(one(p4, "ScaledObject", "decoder", "4p")["spec"]["maxReplicaCount"] == 4, "maxReplicas 10 capped at 4 partitions")

    m = rendered.get("serviceMonitor+rules", [])
    sm = one(m, "ServiceMonitor", None, "serviceMonitor")
    if sm:
        check(sm["spec"]["endpoints"][0]["port"] == "http-metrics" and sm["metadata"]["labels"].get("release") == "kps",
              "ServiceMonitor scrapes http-metrics and carries the selector label")
        sel = sm["spec"]["selector"]["matchLabels"]
        svcs = [s for s in find(m, "Service") if all(s["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        check(len(svcs) == 2 and all(s["spec"]["ports"][0]["name"] == "http-metrics" for s in svcs),
              "ServiceMonitor selects both services' metrics ports")
    one(m, "PrometheusRule", None, "prometheusRule")
    for w in find(m, "StatefulSet") + find(m, "Deployment"):
        check("prometheus.io/scrape" not in w["spec"]["template"]["metadata"]["annotations"],
              "no scrape annotations next to a ServiceMonitor")

    off = rendered.get("serviceMonitor off, no annotations", [])
    check(all("prometheus.io/scrape" not in w["spec"]["template"]["metadata"]["annotations"]
              for w in find(off, "StatefulSet") + find(off, "Deployment")), "scrape annotations can be turned off")
    check("WARNING" in notes(merge(BASE, scenarios["serviceMonitor off, no annotations"])), "NOTES warns when nothing scrapes")

    e = rendered.get("existing secret", [])
    check(not find(e, "Secret"), "existing secret: the chart creates no Secret")
    refs = [v["valueFrom"]["secretKeyRef"]["name"] for w in find(e, "StatefulSet") + find(e, "Deployment")
            for v in env_of(w).values() if "secretKeyRef" in v.get("valueFrom", {})]
    check(len(refs) == 8 and set(refs) == {"sck-creds"}, f"existing secret: all 8 credential variables read from it ({refs})")
    check(all("checksum/secret" not in w["spec"]["template"]["metadata"]["annotations"]
              for w in find(e, "StatefulSet") + find(e, "Deployment")), "existing secret: no checksum of a Secret we do not render")

    a = rendered.get("autoscaling off", [])
    check(not find(a, "HorizontalPodAutoscaler") and not find(a, "ScaledObject"), "autoscaling off: no autoscalers")
    check(one(a, "StatefulSet", "bridge", "off").get("spec", {}).get("replicas") == 3
          and one(a, "Deployment", "decoder", "off").get("spec", {}).get("replicas") == 4, "autoscaling off: fixed replicas")

    s = rendered.get("sasl_ssl + TLS", [])
    ta = one(s, "TriggerAuthentication", "decoder", "sasl")
    if ta:
        params = {r["parameter"]: (r["name"], r["key"]) for r in ta["spec"]["secretTargetRef"]}
        check(set(params) == {"username", "password", "ca"} and params["ca"] == ("kafka-ca", "ca.crt"),
              "sasl: KEDA authenticates with the SASL credentials and the CA")
        trig = one(s, "ScaledObject", "decoder", "sasl")["spec"]["triggers"][0]
        check(trig["metadata"]["sasl"] == "scram_sha512" and trig["metadata"]["tls"] == "enable"
              and trig["authenticationRef"]["name"] == ta["metadata"]["name"], "sasl: trigger uses scram_sha512 over TLS")
    scms = {c["metadata"]["name"]: c["data"] for c in find(s, "ConfigMap") if c["metadata"]["name"].endswith(("-bridge", "-decoder"))}
    check(all(v.get("KAFKA_SECURITY_PROTOCOL") == "sasl_ssl" and v.get("KAFKA_SASL_MECHANISM") == "SCRAM-SHA-512"
              and v.get("KAFKA_SSL_CA_FILE") == "/etc/sck/kafka-ca/ca.crt" for v in scms.values()) and len(scms) == 2,
          "sasl: both services get protocol, mechanism and CA path")
    sb = one(s, "StatefulSet", "bridge", "sasl")
    if sb:
        mounts = {m["mountPath"] for m in pod_spec(sb)["containers"][0].get("volumeMounts", [])}
        check(mounts == {"/etc/sck/kafka-ca", "/etc/sck/mqtt-ca"}, "sasl: bridge mounts both CA bundles")
        bcm = next(v for k, v in scms.items() if k.endswith("-bridge"))
        check(bcm.get("MQTT_TLS") == "true" and bcm.get("MQTT_CA_FILE") == "/etc/sck/mqtt-ca/ca.crt", "MQTT TLS wired")
    sd = one(s, "Deployment", "decoder", "sasl")
    if sd:
        mounts = {m["mountPath"] for m in pod_spec(sd)["containers"][0].get("volumeMounts", [])}
        vols = {v["name"]: v["secret"]["secretName"] for v in pod_spec(sd).get("volumes", [])}
        check(mounts == {"/etc/sck/kafka-ca", "/etc/sck/clickhouse-ca"} and vols.get("clickhouse-ca") == "clickhouse-ca",
              "sasl: decoder mounts the Kafka and ClickHouse CA bundles")
        dcm = next(v for k, v in scms.items() if k.endswith("-decoder"))
        check(dcm.get("CLICKHOUSE_CA_FILE") == "/etc/sck/clickhouse-ca/ca.crt"
              and dcm.get("CLICKHOUSE_URL") == "https://clickhouse:8443", "ClickHouse TLS wired")
    ss = find(s, "Secret")
    check(len(ss) == 1 and {"kafka-sasl-username", "kafka-sasl-password", "mqtt-username", "mqtt-password"} <= set(ss[0]["data"]),
          "sasl: the created Secret holds the credentials")

    print("== chart: values that must be refused", flush=True)
    refused = {
        "no mqtt.host": ({}, "mqtt.host is required"),
        "grace <= drain": ({"decoder": {"terminationGracePeriodSeconds": 20}}, "must exceed"),
        "sasl without credentials": ({"kafka": {"security": {"protocol": "sasl_plaintext", "saslMechanism": "PLAIN"}}},
                                     "auth.kafka.username"),
        "mqtt user without password": ({"auth": {"mqtt": {"username": "x"}}}, "both or neither"),
        "unknown autoscaling mode": ({"decoder": {"autoscaling": {"mode": "cpu"}}}, "mode"),
        "misspelt top-level key": ({"bridgee": {}}, "bridgee"),
        "bad log format": ({"logFormat": "xml"}, "logFormat"),
        "bad kafka protocol": ({"kafka": {"security": {"protocol": "tls"}}}, "protocol"),
        "ClickHouse CA with http://": ({"clickhouse": {"caSecret": "ca"}}, "https://"),
    }
    for name, (extra, needle) in refused.items():
        values = merge(BASE, extra) if name != "no mqtt.host" else {}
        try:
            render(values)
            check(False, f"refused: {name} (it rendered)")
        except helm.HelmError as e:
            check(needle in str(e), f"refused: {name}, with an error naming it ({str(e)[:200]})")


@functools.cache
def adapter_rule() -> dict:
    cm = yaml.safe_load((ROOT / "deploy/k8s/base/prometheus-adapter/adapter-config.yaml").read_text())
    rules = yaml.safe_load(cm["data"]["config.yaml"])["externalRules"]
    return next(r for r in rules if "sck_decoder_consumer_lag" in r["seriesQuery"])


# ---------------------------------------------------------------------------------------------
# Alert rules


@functools.cache
def rule_groups() -> dict:
    docs = render(merge(BASE, {"monitoring": {"prometheusRule": {"enabled": True}}}))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def check_rules() -> None:
    print("== alert rules: promtool check + test", flush=True)
    groups = rule_groups()
    names = [r["alert"] for g in groups["groups"] for r in g["rules"]]
    readme = (ROOT / "README.md").read_text()
    for name in names:
        check(f"Runbook: {name}" in readme, f"README has a runbook section for {name}")
    tests = yaml.safe_load((CHART / "tests/alerts.test.yaml").read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])}
    check(set(names) == tested, f"every alert has a promtool test (untested: {set(names) - tested})")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sck-ingest.rules.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
        shutil.copy(CHART / "tests/alerts.test.yaml", Path(tmp) / "alerts.test.yaml")
        for args in (["check", "rules", "sck-ingest.rules.yaml"], ["test", "rules", "alerts.test.yaml"]):
            r = subprocess.run(["promtool", *args], cwd=tmp, capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stdout, r.stderr)
            check(r.returncode == 0, f"promtool {' '.join(args)}")


# ---------------------------------------------------------------------------------------------
# kustomize overlays


def dev_chart_manifest() -> str:
    values = yaml.safe_load((DEV / "values.yaml").read_text())
    files = render_files(values, namespace="sck-dev")
    header = ("# Generated by `make k8s-render` from deploy/charts/sck-ingest and values.yaml in this folder.\n"
              "# Do not edit: `make test` fails when this differs from a fresh render.\n")
    parts = [f"# Source: {path}\n" + yaml.safe_dump(doc, sort_keys=False) for path, doc in manifests(files)]
    return header + "---\n".join(parts)


def check_k8s() -> None:
    print("== k8s: kubectl kustomize each overlay", flush=True)
    current = (DEV / "chart.yaml").read_text() if (DEV / "chart.yaml").exists() else ""
    check(current == dev_chart_manifest(), "deploy/k8s/overlays/dev/sck-ingest/chart.yaml is up to date (make k8s-render)")
    overlays = sorted(p.parent for p in (ROOT / "deploy/k8s/overlays").glob("*/kustomization.yaml"))
    check(len(overlays) >= 3, f"overlays found: {[o.name for o in overlays]}")
    for overlay in overlays:
        r = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True)
        check(r.returncode == 0, f"kubectl kustomize {overlay.relative_to(ROOT)} ({r.stderr.strip()[:300]})")
        if r.returncode != 0:
            continue
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        validate(docs, str(overlay.relative_to(ROOT)))
        if overlay.name == "dev":
            kinds = {d["kind"] for d in docs}
            check({"EMQX", "Kafka", "KafkaTopic", "ClickHouseInstallation", "StatefulSet", "Deployment",
                   "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule"} <= kinds,
                  f"dev overlay has the dependencies and sck-ingest ({sorted(kinds)})")
            secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
            values = yaml.safe_load((DEV / "values.yaml").read_text())
            check(values["auth"]["existingSecret"] in secrets, "dev overlay creates the Secret the chart reads")
            topics = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaTopic"}
            check(topics.get("sck.readings", {}).get("spec", {}).get("partitions") == values["kafka"]["partitions"],
                  "dev overlay: readings partitions match the chart's kafka.partitions")
            ns = {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace",)}
            check(ns == {"sck-dev", "monitoring"}, f"dev overlay namespaces: {ns}")


# ---------------------------------------------------------------------------------------------
# Dashboard and metric names


def metric_names(text: str) -> set[str]:
    """Sample names of a Prometheus text exposition (histograms give _bucket/_sum/_count)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def sample_names() -> set[str]:
    files = sorted(SAMPLE_DIR.glob("*.prom"))
    check(len(files) == 2, f"metrics samples present: {[f.name for f in files]}")
    return set().union(*(metric_names(f.read_text()) for f in files))


def queried(expr: str) -> set[str]:
    return set(re.findall(r"\bsck_[a-z0-9_]+\b", expr))


def check_dashboard() -> None:
    print("== dashboard and rules query only metrics the services export", flush=True)
    dash = json.loads((CHART / "dashboards/sck-ingest.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v.get("definition", "") for v in dash["templating"]["list"]]
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for want in ("ingest rate by kind", "readings/s", "errors by reason", "lag by partition", "end-to-end",
                 "insert latency", "in-flight", "replicas"):
        check(want in titles, f"dashboard has a panel for {want}")
    check(any("0.5," in e and "end_to_end" in e for e in exprs) and any("0.99," in e and "end_to_end" in e for e in exprs),
          "dashboard shows end-to-end p50 and p99")
    ids = [p["id"] for p in dash["panels"]]
    check(len(ids) == len(set(ids)), "dashboard panel ids are unique")
    have = sample_names()
    rules = [r["expr"] for g in rule_groups()["groups"] for r in g["rules"]]
    adapter = adapter_rule()
    for source, items in (("dashboard", exprs), ("alert rules", rules), ("adapter rule", [adapter["seriesQuery"]])):
        used = set().union(*(queried(e) for e in items))
        check(bool(used), f"{source} queries sck_* metrics")
        missing = sorted(used - have)
        check(not missing, f"{source}: every queried metric exists in /metrics (missing: {missing})")
    compose = (ROOT / "deploy/docker/grafana/provisioning/dashboards/sck-ingest.yml").read_text()
    check("/var/lib/grafana/dashboards" in compose, "docker-compose provisions the same dashboard")


def check_docker() -> None:
    """docker-compose.yml cannot be run here (no Docker engine): check what can be checked."""
    print("== docker: compose file references", flush=True)
    docker = ROOT / "deploy" / "docker"
    compose = yaml.safe_load((docker / "docker-compose.yml").read_text())
    services = compose["services"]
    dockerfile = (docker / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M | re.I))
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            check((docker / build["context"] / build["dockerfile"]).is_file() and build["target"] in targets,
                  f"compose {name}: builds an existing Dockerfile target ({build['target']})")
        for vol in svc.get("volumes", []):
            host = vol.split(":")[0]
            if host.startswith("."):
                check((docker / host).exists(), f"compose {name}: mounted {host} exists")
        for dep in svc.get("depends_on", {}):
            check(dep in services, f"compose {name}: depends on a defined service ({dep})")
    for role in ("bridge", "decoder"):
        check(sum(1 for n in services if n.startswith(f"{role}-")) == 2, f"compose runs 2 {role}s")
        check(all(services[n].get("read_only") is True for n in services if n.startswith(f"{role}-")),
              f"compose {role}s run with a read-only root filesystem")
    prom = yaml.safe_load((docker / "prometheus/prometheus.yml").read_text())
    scraped = {t.split(":")[0] for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    check(scraped == {n for n in services if n.startswith(("bridge-", "decoder-"))},
          f"compose Prometheus scrapes every bridge and decoder ({sorted(scraped)})")
    emqx = services["emqx"]["environment"]
    check(emqx.get("EMQX_AUTHORIZATION__NO_MATCH") == "deny" and "EMQX_AUTHENTICATION__1__MECHANISM" in emqx,
          "compose EMQX: authentication on, unmatched topics denied")
    check(bool(re.search(r"^USER\s+10001", dockerfile, re.M)) and "HEALTHCHECK" in dockerfile,
          "Dockerfile: non-root user and a HEALTHCHECK")


def live_metrics(directory: str) -> None:
    print(f"== live /metrics in {directory} vs the committed sample", flush=True)
    for name in ("bridge", "decoder"):
        live = metric_names((Path(directory) / f"{name}.prom").read_text())
        sample = metric_names((SAMPLE_DIR / f"{name}.prom").read_text())
        check(live == sample, f"{name}: live metric names equal the sample "
                              f"(only live: {sorted(live - sample)}, only sample: {sorted(sample - live)})")


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "all"
    if cmd == "all":
        check_chart()
        check_rules()
        check_k8s()
        check_dashboard()
        check_docker()
    elif cmd == "live-metrics" and len(sys.argv) == 3:
        live_metrics(sys.argv[2])
    elif cmd == "k8s-render":
        (DEV / "chart.yaml").write_text(dev_chart_manifest())
        print(f"wrote {(DEV / 'chart.yaml').relative_to(ROOT)}")
        return 0
    else:
        print(__doc__)
        return 2
    print(f"{passed} checks passed, {len(failures)} failed")
    for f in failures:
        print(f"  - {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
